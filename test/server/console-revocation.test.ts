import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

/** A serial console through the API, as a user's terminal holds it: its text, and how it closed. */
class OpenConsole {
  text = '';
  closedAs: { code: number; reason: string } | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #socket: WebSocket;

  constructor(url: string) {
    this.#socket = new WebSocket(url);
    this.#socket.on('message', (data: Buffer) => (this.text += data.toString('latin1')));
    this.closed = new Promise((resolve) =>
      this.#socket.on('close', (code, reason) =>
        resolve((this.closedAs = { code, reason: reason.toString() })),
      ),
    );
  }

  /** Waits for one more `tick N` line than there is now (the guest prints one every 100 ms). */
  async nextTick(timeoutMs = 30_000): Promise<void> {
    const count = () => (this.text.match(/tick \d+\r?\n/g) ?? []).length;
    const seen = count();
    const deadline = Date.now() + timeoutMs;
    while (count() <= seen) {
      if (this.closedAs || Date.now() > deadline)
        throw new Error(
          `no new tick on the console (${JSON.stringify(this.closedAs ?? 'open')}): ${this.text}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async closedWithin(timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('the console stayed open')), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#socket.close();
  }
}

describe("a VM's serial console closes when its user's credential or access ends (real QEMU)", () => {
  let s: TestServer;
  let admin: string;
  let vmId: string;
  let users = 0;
  const images = mkdtempSync(join(tmpdir(), 'zenith-console-revocation-'));
  const newUser = async (role: string) => {
    const name = `console-user-${++users}`;
    const password = `password-of-${name}`;
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name, role, password },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return { id: created.body.identity.id as string, name, token: await s.login(name, password) };
  };
  const ticket = async (token: string) => {
    const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return `${s.baseUrl.replace('http', 'ws')}${issued.body.path}`;
  };
  const openConsole = async (token: string) => {
    const console = new OpenConsole(await ticket(token));
    await console.nextTick();
    return console;
  };

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
    admin = await s.login();
    const added = await s.request('POST', '/connections', {
      token: admin,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.body.state, 'connected', JSON.stringify(added.body));
    const host = (await s.request('GET', '/hosts', { token: admin })).body.items[0];
    const created = await s.waitForTask(
      admin,
      (
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'console-guest',
            hostId: host.id,
            cpus: 1,
            memoryBytes: 128 * 1048576,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId;
    const started = await s.waitForTask(
      admin,
      (await s.request('POST', `/vms/${vmId}/start`, { token: admin })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
  });
  after(async () => {
    await s
      .waitForTask(admin, (await s.request('POST', `/vms/${vmId}/stop`, { token: admin })).body.id)
      .catch(() => undefined);
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  test("disabling its user closes the console at once with 4401 and ZEN_UNAUTHENTICATED; the VM's console serves the next user", async () => {
    const opal = await newUser('operator');
    const hers = await openConsole(opal.token);
    const disabled = await s.request('PATCH', `/users/${opal.id}`, {
      token: admin,
      body: { disabled: true },
    });
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
    const { code, reason } = await hers.closedWithin();
    assert.equal(code, 4401);
    assert.match(reason, /^ZEN_UNAUTHENTICATED: this identity is disabled/);
    // QEMU serves one client on a serial port: the next one is served once hers has gone.
    const next = await openConsole(admin);
    next.close();
    await next.closed;
  });

  test('revoking the token the ticket was issued under closes its console with ZEN_TOKEN_EXPIRED; a ticket of a revoked token opens nothing', async () => {
    const otto = await newUser('operator');
    const console = await openConsole(otto.token);
    const unused = await ticket(otto.token);
    const tokenId = otto.token.slice(0, otto.token.indexOf('.'));
    assert.equal((await s.request('DELETE', `/tokens/${tokenId}`, { token: admin })).status, 200);
    const { code, reason } = await console.closedWithin();
    assert.equal(code, 4401);
    assert.match(reason, /^ZEN_TOKEN_EXPIRED: /);
    const late = new OpenConsole(unused);
    const refused = await late.closedWithin();
    assert.equal(refused.code, 4401);
    assert.match(refused.reason, /^ZEN_TOKEN_EXPIRED: /);
    assert.equal(late.text, '', 'not a byte of the console');
  });

  test('removing the binding that gave vm.console closes the console with 4403 and ZEN_FORBIDDEN', async () => {
    const pat = await newUser('none');
    const binding = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: pat.name, role: 'operator', scope: vmId },
    });
    assert.equal(binding.status, 201, JSON.stringify(binding.body));
    const console = await openConsole(pat.token);
    const removed = await s.request('DELETE', `/role-bindings/${binding.body.id}`, {
      token: admin,
    });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    const { code, reason } = await console.closedWithin();
    assert.equal(code, 4403);
    assert.match(reason, /^ZEN_FORBIDDEN: /);
  });
});
