import { App, CfnElement, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, expect } from 'vitest';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';

export const ENV = { account: '123456789012', region: 'eu-west-1' };
export const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** The default context with what a deployment usually adds: an address for the alarms, and an expiry. */
export const DEPLOYED_CONTEXT = { alarmEmail: 'ops@example.com', snapshotExpirationDays: '90' };

export interface Synthesized {
  app: App;
  stack: ExporterStack;
  template: Template;
  pack: AwsSolutionsChecks;
  id: (construct: IConstruct) => string;
  /** The logical ids of the snapshot bucket, the dead-letter queue and the function. */
  bucketId: string;
  queueId: string;
  functionId: string;
}

/** Builds the app as infra/app.ts does (cdk.json's flags, cdk-nag registered) and synthesizes it. */
export function synthesize(context: Record<string, unknown>, bundle: boolean): Synthesized {
  const app = new App({
    context: { ...cdkJson.context, ...context, ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const stack = new ExporterStack(app, 'ThingParkExporter', { env: ENV, settings: settingsFromContext(app) });
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  // Synthesis runs the validation plugins and throws on any unacknowledged finding.
  const template = Template.fromStack(stack);
  const id = (construct: IConstruct) => stack.getLogicalId(construct.node.defaultChild as CfnElement);
  return { app, stack, template, pack, id, bucketId: id(stack.bucket), queueId: id(stack.deadLetterQueue), functionId: id(stack.function) };
}

/**
 * Each test file runs in a process of its own, whose first synthesis also loads the modules
 * of aws-cdk-lib it uses: several times the seconds of a synthesis alone.
 */
const SYNTHESIS_TIMEOUT_MS = 120_000;

/**
 * The stack synthesized once, before the tests of the file (or describe) that calls this:
 * the object returned is filled in then. The function is bundled only when `bundle` is set,
 * as `cdk synth` does; no other assertion depends on the bundle.
 */
export function synthesizeOnce(context: Record<string, unknown>, bundle = false): Synthesized {
  const synthesized = {} as Synthesized;
  beforeAll(() => {
    Object.assign(synthesized, synthesize(context, bundle));
  }, SYNTHESIS_TIMEOUT_MS);
  return synthesized;
}

// Template JSON is untyped by nature; `any` keeps the assertions readable.
export type Resource = { Properties: Record<string, any> } & Record<string, any>;

export function resourcesOf(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

export function onlyResource(template: Template, type: string) {
  const found = Object.values(resourcesOf(template, type));
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The Glue table of that name (the stack has several). */
export function glueTable(template: Template, name: string) {
  const found = Object.values(resourcesOf(template, 'AWS::Glue::Table')).filter((table) => table.Properties.TableInput.Name === name);
  expect(found).toHaveLength(1);
  return found[0]!;
}

export function policyStatements(template: Template, roleLogicalId: string): any[] {
  const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((policy) =>
    policy.Properties.Roles.some((role: any) => role.Ref === roleLogicalId),
  );
  expect(policies).toHaveLength(1);
  return policies[0]!.Properties.PolicyDocument.Statement;
}

export function bucketPolicyStatements(template: Template, bucketLogicalId: string): any[] {
  const policies = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy')).filter((policy) => policy.Properties.Bucket.Ref === bucketLogicalId);
  expect(policies).toHaveLength(1);
  return policies[0]!.Properties.PolicyDocument.Statement;
}

/**
 * JSON that CDK renders as an Fn::Join of text and references (a dashboard body, a state
 * machine definition), as the service will read it: each reference becomes a `<Ref:id>` or
 * `<GetAtt:id.attribute>` placeholder, which never contains a character JSON would have to
 * escape.
 */
export function joinedJson(value: any): any {
  if (typeof value === 'string') return JSON.parse(value);
  const [separator, parts] = value['Fn::Join'] as [string, unknown[]];
  const text = parts
    .map((part: any) => {
      if (typeof part === 'string') return part;
      if (typeof part.Ref === 'string') return `<Ref:${part.Ref}>`;
      if (Array.isArray(part['Fn::GetAtt'])) return `<GetAtt:${part['Fn::GetAtt'].join('.')}>`;
      throw new Error(`Unexpected reference in the joined JSON: ${JSON.stringify(part)}`);
    })
    .join(separator);
  return JSON.parse(text);
}

export const objectArn = (bucketId: string, key: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/${key}`]] });
export const arnOf = (logicalId: string) => ({ 'Fn::GetAtt': [logicalId, 'Arn'] });
