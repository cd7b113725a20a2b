/**
 * The JSONPath of the Amazon States Language, as far as the definitions the tests run use
 * it: a root, `$` (the state's data) or `$$` (the context object), then field names (`.a`)
 * and array indexes (`[0]`); where a path may select several nodes (the `.$` fields of
 * Parameters and ResultSelector), also a slice from an index to the end (`[-1:]`, which
 * selects a list), as the last step. Each field of a definition allows less (a ResultPath only
 * field names from `$`): see `PathRules`. Anything else (wildcards, filters, recursive
 * descent, other slices, intrinsic functions) is refused when the definition is loaded, so a
 * definition using it cannot run here with a meaning it does not have in Step Functions.
 */

export type Step = { field: string } | { index: number } | { from: number };

/** A path: the root it starts from, the steps it walks, and its text (for messages). */
export interface Path {
  readonly context: boolean;
  readonly steps: readonly Step[];
  readonly text: string;
}

/** What a field of the definition allows in its paths, besides field names from `$`. */
export interface PathRules {
  /** `$$`: the context object. */
  context?: boolean;
  /** `[n]`: an array's element. */
  indexes?: boolean;
  /** `[n:]` as the last step: the array's elements from the nth (from the end, when negative). */
  slice?: boolean;
}

const STEP = /^(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[(0|[1-9][0-9]*)\]|\[(-?(?:0|[1-9][0-9]*)):\])/;

/** Parses `text` as a path `rules` allow; undefined when it is not one. */
export function parsePath(text: unknown, rules: PathRules = {}): Path | undefined {
  if (typeof text !== 'string' || !text.startsWith('$')) return undefined;
  const context = text.startsWith('$$');
  if (context && !rules.context) return undefined;
  const steps: Step[] = [];
  let rest = text.slice(context ? 2 : 1);
  while (rest !== '') {
    const last = steps.at(-1);
    if (last && 'from' in last) return undefined;
    const match = STEP.exec(rest);
    if (!match) return undefined;
    const [whole, field, index, from] = match;
    if (field !== undefined) steps.push({ field });
    else if (index !== undefined && rules.indexes) steps.push({ index: Number(index) });
    else if (from !== undefined && rules.slice) steps.push({ from: Number(from) });
    else return undefined;
    rest = rest.slice(whole.length);
  }
  // The whole context object is no value a definition here needs.
  if (context && steps.length === 0) return undefined;
  return { context, steps, text };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What `path` selects in `data`, or in `context` for a `$$` path: `{ found: false }` when a
 * field on the way is missing, an index is past the array's end, or a step meets a value of
 * another kind than it walks (a field of an array, an element of an object).
 */
export function select(data: unknown, path: Path, context: unknown = {}): { found: true; value: unknown } | { found: false } {
  let value = path.context ? context : data;
  for (const step of path.steps) {
    if ('field' in step) {
      if (!isObject(value) || !Object.hasOwn(value, step.field)) return { found: false };
      value = value[step.field];
    } else if (!Array.isArray(value)) {
      return { found: false };
    } else if ('index' in step) {
      if (step.index >= value.length) return { found: false };
      value = value[step.index];
    } else {
      value = value.slice(step.from);
    }
  }
  return { found: true, value };
}

/**
 * `data` with `value` placed at `path` (a copy: `data` is left as it was), the fields on the
 * way created as objects; undefined when a field on the way holds something else. Only field
 * names from `$` (what a ResultPath may hold here).
 */
export function place(data: unknown, path: Path, value: unknown): { placed: unknown } | undefined {
  const fields = path.steps.map((step) => {
    if (path.context || !('field' in step)) throw new Error(`Cannot place a value at ${path.text}`);
    return step.field;
  });
  return placeAt(data, fields, value);
}

function placeAt(data: unknown, fields: readonly string[], value: unknown): { placed: unknown } | undefined {
  const [field, ...rest] = fields;
  if (field === undefined) return { placed: value };
  if (!isObject(data)) return undefined;
  const inner = placeAt(Object.hasOwn(data, field) ? data[field] : {}, rest, value);
  return inner && { placed: { ...data, [field]: inner.placed } };
}
