import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Paths that may hold secrets: pino replaces them before anything is written. */
export const redactedPaths = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'credentials',
  '*.credentials',
  // An agent's key, Zenith's CA key (sealed or not).
  'privateKey',
  '*.privateKey',
  'sealed_key',
  '*.sealed_key',
  // A replication's pre-shared key (synchronous replication), wherever its psk object goes.
  'psk',
  '*.psk',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const config: LoggerOptions = {
    level: options.level ?? process.env.ZENITH_LOG_LEVEL ?? 'info',
    redact: { paths: redactedPaths, censor: '[redacted]' },
    base: { service: 'zenith' },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

export const silentLogger: Logger = pino({ level: 'silent' });
