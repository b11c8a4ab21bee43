import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ZenithError } from '../../api/errors.js';
import { reportUnhandledRejectionsTo } from '../../core/unhandled-rejections.js';
import type { LdapSettings } from '../../services/identity/ldap-directory.js';

function readLdapSettings(path: string): LdapSettings {
  let settings: LdapSettings;
  try {
    settings = JSON.parse(readFileSync(path, 'utf8')) as LdapSettings;
  } catch (error) {
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `ZENITH_LDAP_CONFIG: cannot read ${path} as JSON (${(error as Error).message})`,
    );
  }
  const bindPassword = process.env.ZENITH_LDAP_BIND_PASSWORD ?? settings.bindPassword;
  for (const key of ['url', 'bindDn', 'userBase', 'groupBase'] as const)
    if (typeof settings[key] !== 'string')
      throw new ZenithError('ZEN_CONFIG_INVALID', `ZENITH_LDAP_CONFIG: '${key}' is missing`);
  if (typeof bindPassword !== 'string')
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      'the LDAP bind password is missing (ZENITH_LDAP_BIND_PASSWORD or bindPassword)',
    );
  return { ...settings, bindPassword, groupMap: settings.groupMap ?? {} };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the control plane: API, event stream and console on one port')
    .option(
      '--data-dir <dir>',
      'where the SQLite database, keys and driver state live',
      process.env.ZENITH_DATA_DIR ?? './.zenith',
    )
    .option('--port <n>', 'TCP port to listen on', process.env.ZENITH_PORT ?? '7443')
    .option('--host <address>', 'address to listen on', process.env.ZENITH_HOST ?? '127.0.0.1')
    .option(
      '--database <url>',
      'PostgreSQL URL (postgres://…); embedded SQLite when absent',
      process.env.ZENITH_DATABASE_URL,
    )
    .option(
      '--agent-certificate-days <n>',
      'how long the client certificate of a host agent lasts; agents renew at two thirds (env ZENITH_AGENT_CERTIFICATE_DAYS)',
      process.env.ZENITH_AGENT_CERTIFICATE_DAYS ?? '30',
    )
    .option(
      '--sensor-sample-seconds <n>',
      "how often every physical machine's sensors are read through its BMC for their history and energy (env ZENITH_SENSOR_SAMPLE_SECONDS)",
      process.env.ZENITH_SENSOR_SAMPLE_SECONDS ?? '60',
    )
    .option(
      '--backup-roots <dirs>',
      "directories backup repositories may be in, separated by ':' (env ZENITH_BACKUP_ROOTS; default: the data directory's backups/)",
      process.env.ZENITH_BACKUP_ROOTS,
    )
    .option(
      '--no-local-host',
      'do not connect this machine as a QEMU host on the first start (env ZENITH_LOCAL_HOST=off)',
    )
    .action(
      async (options: {
        dataDir: string;
        port: string;
        host: string;
        database?: string;
        localHost: boolean;
        agentCertificateDays: string;
        sensorSampleSeconds: string;
        backupRoots?: string;
      }) => {
        const sensorSampleSeconds = Number(options.sensorSampleSeconds);
        if (!(sensorSampleSeconds >= 0.1 && sensorSampleSeconds <= 3600))
          throw new ZenithError(
            'ZEN_CONFIG_INVALID',
            `--sensor-sample-seconds must be a number of seconds from 0.1 to 3600, not '${options.sensorSampleSeconds}'`,
          );
        const port = Number(options.port);
        const certificateDays = Number(options.agentCertificateDays);
        if (!(certificateDays > 0 && certificateDays <= 3650))
          throw new ZenithError(
            'ZEN_CONFIG_INVALID',
            `--agent-certificate-days must be a number of days from a fraction to 3650, not '${options.agentCertificateDays}'`,
          );
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new ZenithError(
            'ZEN_CONFIG_INVALID',
            `--port must be 0–65535, not '${options.port}'`,
          );
        // Loaded here, not at the top: every other command starts without the server's modules.
        const { startControlPlane } = await import('../../app/control-plane.js');
        const { connectLocalHost } = await import('../../services/connections/local-host.js');
        const { buildApp } = await import('../../server/app.js');
        const plane = await startControlPlane({
          dataDir: resolve(options.dataDir),
          databaseUrl: options.database,
          agentCertificateValidityMs: Math.round(certificateDays * 86_400_000),
          machines: { sensorSampleEveryMs: Math.round(sensorSampleSeconds * 1000) },
          ...(options.backupRoots
            ? {
                backupRoots: options.backupRoots
                  .split(':')
                  .filter(Boolean)
                  .map((dir) => resolve(dir)),
              }
            : {}),
          adminPassword: process.env.ZENITH_ADMIN_PASSWORD || undefined,
          // LDAP/AD login: a JSON file of LdapSettings (docs/identity.md); the bind password may come from the environment.
          ...(process.env.ZENITH_LDAP_CONFIG
            ? { ldap: readLdapSettings(process.env.ZENITH_LDAP_CONFIG) }
            : {}),
        });
        reportUnhandledRejectionsTo(plane.logger);
        if (options.localHost && process.env.ZENITH_LOCAL_HOST !== 'off')
          await connectLocalHost(plane.connections, resolve(options.dataDir), plane.logger);
        const app = await buildApp(plane);
        const address = await app.listen({ port, host: options.host });
        if (plane.generatedAdminPassword) {
          // Shown once, on the terminal only (never in the log): the first administrator's password.
          process.stderr.write(
            `\n  First start: user 'admin' was created with password: ${plane.generatedAdminPassword}\n  Log in with: zenith login --server ${address} --user admin\n  Change it with: zenith users passwd admin\n\n`,
          );
        }
        plane.logger.info(
          { address, store: plane.store.dialect, dataDir: resolve(options.dataDir) },
          'zenith is serving',
        );
        let stopping = false;
        const stop = async (signal: string) => {
          if (stopping) return;
          stopping = true;
          plane.logger.info({ signal }, 'shutting down');
          await app.close();
          await plane.close();
          process.exit(0);
        };
        const stopOn = (signal: string) => {
          stop(signal).catch((error: unknown) => {
            plane.logger.error({ err: error }, 'the shutdown failed');
            process.exit(1);
          });
        };
        process.once('SIGINT', () => stopOn('SIGINT'));
        process.once('SIGTERM', () => stopOn('SIGTERM'));
      },
    );
}
