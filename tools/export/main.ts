/**
 * `npm run export`: one real export from this machine, with the function's own handler,
 * against the platform and into the bucket the environment names, with the AWS credentials
 * and region of this shell. It never starts a stand-in: `npm start` is the local demo, and
 * the two cannot be mistaken for each other. Without its configuration, a region or
 * credentials it refuses to start, naming every missing or malformed variable and what to
 * set for the AWS setup.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../lambda/common/config.ts';
import type { CuratedRunSummary } from '../../lambda/handler.ts';
import { ConfigError } from '../../lambda/common/errors.ts';
import type { Continuation } from '../../lambda/common/request-types.ts';
import { handlerFailed, localContext, printSummary, quietAwsSdk, reportUnknownVariables } from '../cli.ts';
import { awsSetup } from './aws-setup.ts';

quietAwsSdk();
reportUnknownVariables();

// Checked before anything else is printed: a banner naming "s3://undefined" helps nobody.
// The variables and the AWS setup are checked together, so one attempt lists every problem.
let config: Config | undefined;
const problems: string[] = [];
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  problems.push(...error.problems);
}
const aws = await awsSetup();
problems.push(...aws.problems);
if (config === undefined || problems.length > 0) {
  console.error('npm run export runs a real export and cannot start (npm start is the local demo):');
  for (const problem of problems) console.error(`  - ${problem}`);
  console.error('The variables are described in docs/configuration.md, the AWS setup in docs/deploy-and-operate.md.');
  process.exit(2);
}

// Metrics would be CloudWatch EMF lines on the terminal; the run's log shows warnings and errors.
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';

const shell = ['AWS_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION'].filter((name) => process.env[name]).map((name) => `${name}=${process.env[name]}`);
console.log(
  `Exporting from ${config.baseUrl.origin} to s3://${config.bucket}/${config.prefix} ` +
    `(AWS credentials and region: ${shell.length > 0 ? shell.join(', ') : `the SDK's default chain, region ${aws.region}`})`,
);

const { handler } = await import('../../lambda/handler.ts');
try {
  // A fleet too large for one invocation's 15 minutes goes on in the next, as the state
  // machine does it: each is given the answer of the one before.
  let answer: CuratedRunSummary | Continuation = await handler({ label: 'local-export' }, localContext(randomUUID(), 'thingpark-exporter-local'));
  while (answer.status === 'continue') {
    console.log(`Continuing: ${answer.devices} devices and ${answer.pages} pages so far, after ${answer.slice} invocation(s)`);
    answer = await handler(answer, localContext(randomUUID(), 'thingpark-exporter-local'));
  }
  const summary = answer;
  console.log(`\nRun ${summary.status}:`);
  printSummary(summary);
} catch {
  handlerFailed('The export');
  process.exitCode = 1;
}
