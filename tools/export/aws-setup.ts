/**
 * What `npm run export` needs of this shell's AWS setup, found the way the run's own
 * clients will find it (the SDK's default region and credential chains) before the run
 * starts: without it the run got as far as its first S3 call and failed there with
 * "Region is missing" or "Could not load credentials from any providers", naming nothing.
 */
import { S3Client } from '@aws-sdk/client-s3';

export interface AwsSetup {
  region?: string;
  problems: string[];
}

export async function awsSetup(): Promise<AwsSetup> {
  const client = new S3Client({});
  const problems: string[] = [];
  let region: string | undefined;
  try {
    region = await client.config.region();
  } catch (error) {
    problems.push(
      `no AWS region (the SDK: "${messageOf(error)}"): set AWS_REGION to the region of the bucket and the SSM parameters, ` +
        'e.g. AWS_REGION=eu-west-1, or give the profile AWS_PROFILE names a region (aws configure set region eu-west-1 --profile <name>)',
    );
  }
  try {
    await client.config.credentials();
  } catch (error) {
    // The chain's message is the same whichever provider failed: the profile it was told to use is the likely one.
    const profile = process.env.AWS_PROFILE;
    const which = profile ? ` from AWS_PROFILE=${profile}` : '';
    problems.push(
      `no AWS credentials${which} (the SDK: "${messageOf(error)}"): set AWS_PROFILE to a profile of ~/.aws/config ` +
        '(after `aws configure`, or `aws sso login --profile <name>`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ' +
        '(and AWS_SESSION_TOKEN for temporary ones)',
    );
  }
  client.destroy();
  return { ...(region === undefined ? {} : { region }), problems };
}

/** The SDK's first line: its messages name the provider that failed, never a key. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 300) ?? '';
}
