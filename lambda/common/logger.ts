import { Logger } from '@aws-lambda-powertools/logger';
import { DEFAULTS } from './env.ts';

/**
 * The function's logger, from its first line on: a misspelt variable is warned about before
 * the services (lambda/services.ts, which builds the metrics) can be. Its service name comes
 * from POWERTOOLS_SERVICE_NAME.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? DEFAULTS.POWERTOOLS_SERVICE_NAME });
