import type { S3Client } from '@aws-sdk/client-s3';

/**
 * Makes `s3` refuse every part after the first of an upload to one of `refused`'s keys, as
 * S3 refuses a part it cannot take, and calls `onPart` with each part it lets through.
 * AbortMultipartUpload is answered here as S3 does, with nothing: s3rver has none (405).
 */
export function refuseParts(s3: S3Client, refused: ReadonlySet<string>, onPart: (body: unknown) => void = () => undefined): void {
  s3.middlewareStack.add(
    (next, context) => (args) => {
      const { Body: body, Key: key, PartNumber: number } = args.input as { Body?: unknown; Key?: string; PartNumber?: number };
      if (context.commandName === 'AbortMultipartUploadCommand') return Promise.resolve({ output: { $metadata: {} } as never, response: {} });
      if (context.commandName !== 'UploadPartCommand') return next(args);
      if (refused.has(key ?? '') && (number ?? 0) > 1) throw new Error('S3 refused the part');
      onPart(body);
      return next(args);
    },
    { step: 'initialize' },
  );
}
