import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ExporterStack } from './exporter-stack.ts';
import { settingsFromContext, type ExporterSettings } from './settings.ts';

const app = new App();

let settings: ExporterSettings;
try {
  settings = settingsFromContext(app);
} catch (error) {
  // A context mistake is the operator's to fix: the message says what, a stack trace would not.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}

new ExporterStack(app, 'ThingParkExporter', {
  description: 'thingpark-exporter: scheduled export of a ThingPark device fleet to S3, with alarms and an Athena table',
  settings,
  // Account and region come from the deploying credentials (AWS_PROFILE, AWS_REGION, ...).
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
// Every synth (and so every deploy) fails on an unacknowledged AwsSolutions finding.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
