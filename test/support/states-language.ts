import { parsePath, type Path, type PathRules } from './json-path.ts';

/**
 * A strict interpreter of the part of the Amazon States Language the stack's state machine
 * uses: Task states on the optimized `lambda:invoke` integration and on the AWS SDK
 * integration's `sfn:listExecutions` (InputPath, Parameters, ResultSelector, ResultPath,
 * OutputPath, TimeoutSeconds, Retry, Catch), Pass states (InputPath, Parameters, ResultPath,
 * OutputPath), Choice states (StringEquals, StringEqualsPath and IsPresent, And, Or and Not,
 * Default), Fail and Succeed, with the paths of ./json-path.ts and the context object's
 * fields in CONTEXT_FIELDS. Every state type, field, operator, path or reserved error name it
 * does not implement is refused when the definition is loaded, so that a change to the
 * definition cannot pass the tests with a meaning it would not have in Step Functions.
 *
 * Semantics follow the specification (https://states-language.net/spec.html) for what is
 * implemented. One simplification: a path that selects nothing, or a ResultPath that cannot
 * be placed, fails the execution as States.Runtime, which no Retry or Catch sees (Step
 * Functions names the latter States.ResultPathMatchFailure).
 */

export class UnsupportedDefinitionError extends Error {
  override name = 'UnsupportedDefinitionError';
}

/** A state's error, as Retry, Catch and Fail see it: a name and an optional cause. */
export class StatesError extends Error {
  override name = 'StatesError';
  constructor(
    readonly error: string,
    override readonly cause?: string,
  ) {
    super(`${error}${cause === undefined ? '' : `: ${cause}`}`);
  }
}

/** Lambda's optimized integration: invokes a function and answers `{ Payload, StatusCode, ... }`. */
export const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
/** Step Functions' ListExecutions through the AWS SDK integration: answers `{ Executions: [...] }`, most recent first. */
export const LIST_EXECUTIONS = 'arn:aws:states:::aws-sdk:sfn:listExecutions';

/**
 * The Task resources implemented and the parameters each takes (as `Name` or as `Name.$`):
 * the first is required. The task runner of the test answers each.
 */
const RESOURCES = new Map<string, readonly string[]>([
  [LAMBDA_INVOKE, ['FunctionName', 'Payload']],
  [LIST_EXECUTIONS, ['StateMachineArn', 'StatusFilter']],
]);

/** The fields of the context object (`$$`) an execution here fills in (./states-execution.ts); a path to any other is refused. */
export const CONTEXT_FIELDS = new Map<string, readonly string[]>([
  ['Execution', ['Id', 'Input', 'Name', 'StartTime']],
  ['StateMachine', ['Id', 'Name']],
]);

/** What each field allows in its paths: reference paths (one node), a payload template's `.$` paths, a ResultPath. */
const REFERENCE: PathRules = { context: true, indexes: true };
const TEMPLATE: PathRules = { context: true, indexes: true, slice: true };
const RESULT: PathRules = {};

export type Template = { path: Path } | { fields: [string, Template][] } | { value: unknown };
export interface Retrier {
  errors: string[];
  interval: number;
  maxAttempts: number;
  backoff: number;
  maxDelay?: number;
}
interface Catcher {
  errors: string[];
  resultPath: Path | null;
  next: string;
}
export type Rule =
  | { variable: Path; stringEquals: string }
  | { variable: Path; stringEqualsPath: Path }
  | { variable: Path; isPresent: boolean }
  | { and: Rule[] }
  | { or: Rule[] }
  | { not: Rule };
export interface TaskState {
  type: 'Task';
  resource: string;
  inputPath: Path | null;
  parameters?: Template;
  resultSelector?: Template;
  resultPath: Path | null;
  outputPath: Path | null;
  timeoutSeconds?: number;
  retry: Retrier[];
  catch: Catcher[];
  next?: string;
}
export interface PassState {
  type: 'Pass';
  inputPath: Path | null;
  parameters?: Template;
  resultPath: Path | null;
  outputPath: Path | null;
  next?: string;
}
export interface ChoiceState {
  type: 'Choice';
  choices: { rule: Rule; next: string }[];
  default?: string;
}
export interface FailState {
  type: 'Fail';
  error: string | Path;
  cause?: string | Path;
}
export type State = TaskState | PassState | ChoiceState | FailState | { type: 'Succeed' };

/** A definition checked and compiled: what `run` executes. */
export interface Machine {
  startAt: string;
  states: Map<string, State>;
  timeoutSeconds?: number;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const unsupported = (what: string, where: string) => new UnsupportedDefinitionError(`unsupported ${what} in ${where}`);

function allow(raw: Json, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(raw)) if (!allowed.includes(key)) throw unsupported(`field "${key}"`, where);
}

/** `text` as a path `rules` allow, and of the context object only the fields in CONTEXT_FIELDS. */
function parsed(text: unknown, rules: PathRules): Path | undefined {
  const found = parsePath(text, rules);
  if (!found?.context) return found;
  const [group, field] = found.steps;
  const known = group !== undefined && 'field' in group && field !== undefined && 'field' in field && CONTEXT_FIELDS.get(group.field)?.includes(field.field);
  return known ? found : undefined;
}

/** The path of `field`: `$` when it is absent, null when it is null. */
function path(raw: Json, field: string, where: string, rules: PathRules): Path | null {
  if (!(field in raw)) return parsePath('$') as Path;
  if (raw[field] === null) return null;
  const found = parsed(raw[field], rules);
  if (!found) throw unsupported(`${field} ${JSON.stringify(raw[field])}`, where);
  return found;
}

function integer(raw: Json, field: string, where: string, min: number): number | undefined {
  const value = raw[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw unsupported(`${field} ${JSON.stringify(value)}`, where);
  return value;
}

function template(raw: unknown, where: string): Template {
  if (Array.isArray(raw)) throw unsupported('array in a payload template', where);
  if (!isObject(raw)) return { value: raw };
  const fields = Object.entries(raw).map(([key, value]): [string, Template] => {
    if (!key.endsWith('.$')) return [key, template(value, where)];
    const found = parsed(value, TEMPLATE);
    if (!found) throw unsupported(`path ${JSON.stringify(value)} for "${key}"`, where);
    return [key.slice(0, -2), { path: found }];
  });
  return { fields };
}

/** Error names: any of the function's, States.ALL alone and last, and States.Timeout (the only reserved one raised here). */
function errorNames(raw: Json, where: string, last: boolean): string[] {
  const names = raw.ErrorEquals;
  if (!Array.isArray(names) || names.length === 0 || !names.every((name) => typeof name === 'string')) {
    throw unsupported(`ErrorEquals ${JSON.stringify(names)}`, where);
  }
  for (const name of names) {
    if (name === 'States.ALL' && (names.length > 1 || !last)) throw unsupported('States.ALL other than alone in the last rule', where);
    if (name.startsWith('States.') && name !== 'States.ALL' && name !== 'States.Timeout') throw unsupported(`error name ${name}`, where);
  }
  return names;
}

function retriers(raw: unknown, where: string): Retrier[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw unsupported('Retry that is not a list', where);
  return raw.map((retrier: unknown, i) => {
    if (!isObject(retrier)) throw unsupported('Retry rule that is not an object', where);
    allow(retrier, ['ErrorEquals', 'IntervalSeconds', 'MaxAttempts', 'BackoffRate', 'MaxDelaySeconds'], where);
    const backoff = retrier.BackoffRate ?? 2;
    if (typeof backoff !== 'number' || backoff < 1) throw unsupported(`BackoffRate ${JSON.stringify(backoff)}`, where);
    return {
      errors: errorNames(retrier, where, i === raw.length - 1),
      interval: integer(retrier, 'IntervalSeconds', where, 1) ?? 1,
      maxAttempts: integer(retrier, 'MaxAttempts', where, 0) ?? 3,
      backoff,
      maxDelay: integer(retrier, 'MaxDelaySeconds', where, 1),
    };
  });
}

function catchers(raw: unknown, where: string): Catcher[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw unsupported('Catch that is not a list', where);
  return raw.map((catcher: unknown, i) => {
    if (!isObject(catcher)) throw unsupported('Catch rule that is not an object', where);
    allow(catcher, ['ErrorEquals', 'ResultPath', 'Next'], where);
    if (typeof catcher.Next !== 'string') throw unsupported('Catch rule without Next', where);
    return { errors: errorNames(catcher, where, i === raw.length - 1), resultPath: path(catcher, 'ResultPath', where, RESULT), next: catcher.Next };
  });
}

/** Exactly one of Next and End (true): the state's successor, or undefined for the last. */
function successor(raw: Json, where: string): string | undefined {
  if ((raw.Next === undefined) === (raw.End !== true)) throw unsupported(`${String(raw.Type)} without exactly one of Next and End`, where);
  if (raw.End !== undefined && raw.End !== true) throw unsupported(`End ${JSON.stringify(raw.End)}`, where);
  if (raw.Next !== undefined && typeof raw.Next !== 'string') throw unsupported(`Next ${JSON.stringify(raw.Next)}`, where);
  return raw.Next;
}

/** The Parameters of a Task on `resource`: an object of exactly the parameters it takes, its first one given. */
function resourceParameters(raw: Json, where: string): Json {
  const names = RESOURCES.get(raw.Resource as string);
  if (!names) throw unsupported(`Resource ${JSON.stringify(raw.Resource)}`, where);
  const parameters = raw.Parameters;
  if (!isObject(parameters)) throw unsupported(`${String(raw.Resource)} without Parameters`, where);
  allow(
    parameters,
    names.flatMap((name) => [name, `${name}.$`]),
    `the Parameters of ${where}`,
  );
  for (const name of names) if (name in parameters && `${name}.$` in parameters) throw unsupported(`both ${name} and ${name}.$`, where);
  const [required] = names;
  if (required !== undefined && !(required in parameters) && !(`${required}.$` in parameters))
    throw unsupported(`${String(raw.Resource)} without ${required}`, where);
  return parameters;
}

function task(raw: Json, where: string): TaskState {
  allow(
    raw,
    ['Type', 'Comment', 'Resource', 'InputPath', 'Parameters', 'ResultSelector', 'ResultPath', 'OutputPath', 'TimeoutSeconds', 'Retry', 'Catch', 'Next', 'End'],
    where,
  );
  const parameters = resourceParameters(raw, where);
  return {
    type: 'Task',
    resource: raw.Resource as string,
    inputPath: path(raw, 'InputPath', where, REFERENCE),
    parameters: template(parameters, where),
    resultSelector: raw.ResultSelector === undefined ? undefined : template(raw.ResultSelector, where),
    resultPath: path(raw, 'ResultPath', where, RESULT),
    outputPath: path(raw, 'OutputPath', where, REFERENCE),
    timeoutSeconds: integer(raw, 'TimeoutSeconds', where, 1),
    retry: retriers(raw.Retry, where),
    catch: catchers(raw.Catch, where),
    next: successor(raw, where),
  };
}

function pass(raw: Json, where: string): PassState {
  allow(raw, ['Type', 'Comment', 'InputPath', 'Parameters', 'ResultPath', 'OutputPath', 'Next', 'End'], where);
  return {
    type: 'Pass',
    inputPath: path(raw, 'InputPath', where, REFERENCE),
    parameters: raw.Parameters === undefined ? undefined : template(raw.Parameters, where),
    resultPath: path(raw, 'ResultPath', where, RESULT),
    outputPath: path(raw, 'OutputPath', where, REFERENCE),
    next: successor(raw, where),
  };
}

function reference(raw: Json, field: string, where: string): Path {
  const found = parsed(raw[field], REFERENCE);
  if (!found) throw unsupported(`${field} ${JSON.stringify(raw[field])}`, where);
  return found;
}

const OPERATORS = ['Variable', 'StringEquals', 'StringEqualsPath', 'IsPresent', 'And', 'Or', 'Not'];

function rule(raw: unknown, where: string, top: boolean): Rule {
  if (!isObject(raw)) throw unsupported('choice rule that is not an object', where);
  const keys = Object.keys(raw).filter((key) => !(top && key === 'Next'));
  const unknown = keys.find((key) => !OPERATORS.includes(key));
  if (unknown !== undefined) throw unsupported(`choice operator "${unknown}"`, where);
  const [first] = keys;
  if (keys.length === 1 && (first === 'And' || first === 'Or')) {
    const rules = raw[first];
    if (!Array.isArray(rules) || rules.length === 0) throw unsupported(`${first} without rules`, where);
    const inner = rules.map((item) => rule(item, where, false));
    return first === 'And' ? { and: inner } : { or: inner };
  }
  // Not takes one rule, not a list.
  if (keys.length === 1 && first === 'Not') return { not: rule(raw.Not, where, false) };
  if (keys.length !== 2 || !('Variable' in raw)) throw unsupported(`choice rule with ${JSON.stringify(keys)}`, where);
  if (typeof raw.StringEquals === 'string') return { variable: reference(raw, 'Variable', where), stringEquals: raw.StringEquals };
  if ('StringEqualsPath' in raw) return { variable: reference(raw, 'Variable', where), stringEqualsPath: reference(raw, 'StringEqualsPath', where) };
  if (typeof raw.IsPresent === 'boolean') return { variable: reference(raw, 'Variable', where), isPresent: raw.IsPresent };
  throw unsupported(`choice rule ${JSON.stringify(raw)}`, where);
}

function choice(raw: Json, where: string): ChoiceState {
  allow(raw, ['Type', 'Comment', 'Choices', 'Default'], where);
  if (!Array.isArray(raw.Choices) || raw.Choices.length === 0) throw unsupported('Choice without Choices', where);
  const choices = raw.Choices.map((item: unknown) => {
    const next = isObject(item) ? item.Next : undefined;
    if (typeof next !== 'string') throw unsupported('choice rule without Next', where);
    return { rule: rule(item, where, true), next };
  });
  if (raw.Default !== undefined && typeof raw.Default !== 'string') throw unsupported(`Default ${JSON.stringify(raw.Default)}`, where);
  return { type: 'Choice', choices, default: raw.Default };
}

function fail(raw: Json, where: string): FailState {
  allow(raw, ['Type', 'Comment', 'Error', 'Cause', 'ErrorPath', 'CausePath'], where);
  const text = (field: 'Error' | 'Cause'): string | Path | undefined => {
    if (raw[field] !== undefined && raw[`${field}Path`] !== undefined) throw unsupported(`both ${field} and ${field}Path`, where);
    if (raw[field] !== undefined) {
      if (typeof raw[field] !== 'string') throw unsupported(`${field} ${JSON.stringify(raw[field])}`, where);
      return raw[field];
    }
    if (raw[`${field}Path`] === undefined) return undefined;
    const found = parsed(raw[`${field}Path`], RESULT);
    if (!found) throw unsupported(`${field}Path ${JSON.stringify(raw[`${field}Path`])}`, where);
    return found;
  };
  const error = text('Error');
  // Step Functions lets a Fail state name no error; the tests read the error's name, so one is required.
  if (error === undefined) throw unsupported('Fail without Error or ErrorPath', where);
  return { type: 'Fail', error, cause: text('Cause') };
}

function state(raw: unknown, where: string): State {
  if (!isObject(raw)) throw unsupported('state that is not an object', where);
  if (raw.Type === 'Task') return task(raw, where);
  if (raw.Type === 'Pass') return pass(raw, where);
  if (raw.Type === 'Choice') return choice(raw, where);
  if (raw.Type === 'Fail') return fail(raw, where);
  if (raw.Type === 'Succeed') {
    allow(raw, ['Type', 'Comment'], where);
    return { type: 'Succeed' };
  }
  throw unsupported(`state type ${JSON.stringify(raw.Type)}`, where);
}

function transitions(compiled: State): string[] {
  if (compiled.type === 'Task') return [...(compiled.next === undefined ? [] : [compiled.next]), ...compiled.catch.map(({ next }) => next)];
  if (compiled.type === 'Pass') return compiled.next === undefined ? [] : [compiled.next];
  if (compiled.type === 'Choice') return [...compiled.choices.map(({ next }) => next), ...(compiled.default === undefined ? [] : [compiled.default])];
  return [];
}

/** Checks `definition` against what this interpreter implements, and compiles it. */
export function load(definition: unknown): Machine {
  if (!isObject(definition)) throw unsupported('definition that is not an object', 'the definition');
  allow(definition, ['StartAt', 'States', 'Comment', 'TimeoutSeconds'], 'the definition');
  if (!isObject(definition.States) || typeof definition.StartAt !== 'string') throw unsupported('definition without StartAt and States', 'the definition');
  const states = new Map(Object.entries(definition.States).map(([name, raw]) => [name, state(raw, `state ${name}`)]));
  for (const [name, compiled] of states) {
    for (const next of transitions(compiled)) if (!states.has(next)) throw unsupported(`transition to unknown state "${next}"`, `state ${name}`);
  }
  if (!states.has(definition.StartAt)) throw unsupported(`StartAt "${definition.StartAt}"`, 'the definition');
  return { startAt: definition.StartAt, states, timeoutSeconds: integer(definition, 'TimeoutSeconds', 'the definition', 1) };
}
