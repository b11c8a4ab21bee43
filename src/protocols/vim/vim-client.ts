/**
 * A VIM (vSphere SOAP) client: one logged-in session over an injected
 * transport. It keeps the `vmware_soap_session` cookie, logs in again once
 * and repeats the call when the server says the session is gone (expired,
 * terminated, server restarted), and keeps an idle session alive.
 *
 *   const client = await VimClient.connect({ url, username, password, tls: { thumbprint } });
 *   const now = await client.invoke('CurrentTime', client.serviceInstance);
 *   await client.close();
 */
import { channel } from 'node:diagnostics_channel';
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { HttpTransport, type SoapTransport, type TlsOptions } from './http-transport.js';
import { decodeReply, encodeRequest, returnValue } from './soap-envelope.js';
import { moRef, obj, ref, str, type MoRef, type VimArg, type VimValue } from './vim-values.js';
import type { XmlElement, XmlEmit } from './xml-tree.js';

/** Every finished call: { method, durationMs, bytes, error? } (diagnostics_channel). */
export const vimCallChannel = channel('zenith:vim:call');

export interface VimClientOptions {
  /** The SDK endpoint, e.g. https://vcenter.example.com/sdk */
  url: string;
  username: string;
  password: string;
  tls?: TlsOptions;
  /** Per call time limit (default 120 s). */
  timeoutMs?: number;
  /** An idle session is kept alive with a cheap call this often (default 10 minutes; 0: never). */
  keepAliveMs?: number;
  clock?: Clock;
  /** Replaces the HTTP transport (tests, other stacks). */
  transport?: SoapTransport;
}

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  customFieldsManager: MoRef | undefined;
  /** The PerformanceManager (statistics), where the server has one. */
  perfManager: MoRef | undefined;
  about: { fullName: string; apiType: string; apiVersion: string; instanceUuid: string };
}

export interface VimClientStats {
  calls: number;
  bytesReceived: number;
  logins: number;
}

export class VimClient {
  readonly serviceInstance = moRef('ServiceInstance', 'ServiceInstance');
  readonly stats: VimClientStats = { calls: 0, bytesReceived: 0, logins: 0 };
  readonly #options: VimClientOptions;
  readonly #transport: SoapTransport;
  readonly #clock: Clock;
  readonly #keepAlive = new AbortController();
  #content: ServiceContent | undefined;
  #cookie: string | undefined;
  #soapAction = 'urn:vim25';
  #login: Promise<void> | undefined;
  #lastCallAt = 0;
  #closed = false;

  private constructor(options: VimClientOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#transport =
      options.transport ??
      new HttpTransport({
        url: options.url,
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      });
  }

  /** Reads the service content and logs in; fails with a coded error (VIM_CONNECT_FAILED, VIM_CERTIFICATE_REJECTED, VIM_INVALID_LOGIN …). */
  static async connect(options: VimClientOptions): Promise<VimClient> {
    const client = new VimClient(options);
    try {
      await client.#retrieveServiceContent();
      await client.login();
    } catch (error) {
      await client.close();
      throw error;
    }
    client.#startKeepAlive();
    return client;
  }

  get content(): ServiceContent {
    if (!this.#content) throw new ZenithError('VIM_CLOSED', 'the client is not connected');
    return this.#content;
  }

  get sessionCookie(): string | undefined {
    return this.#cookie;
  }

  /** Logs in (again); concurrent callers share one login. */
  login(): Promise<void> {
    this.#login ??= (async () => {
      this.#cookie = undefined;
      await this.#call('Login', this.content.sessionManager, {
        userName: this.#options.username,
        password: this.#options.password,
      });
      this.stats.logins++;
    })().finally(() => (this.#login = undefined));
    return this.#login;
  }

  /** Calls a method and decodes its return value (undefined for void methods). */
  async invoke(
    method: string,
    self: MoRef,
    args: Record<string, VimArg> = {},
    options: { signal?: AbortSignal } = {},
  ): Promise<VimValue | undefined> {
    return returnValue(await this.invokeRaw(method, self, args, options));
  }

  /** Calls a method and answers its returnval elements undecoded (for large replies). */
  async invokeRaw(
    method: string,
    self: MoRef,
    args: Record<string, VimArg> = {},
    options: { signal?: AbortSignal; emit?: XmlEmit } = {},
  ): Promise<XmlElement[]> {
    if (this.#login) await this.#login.catch(() => undefined);
    try {
      return await this.#call(method, self, args, options.signal, options.emit);
    } catch (error) {
      if (!(error instanceof ZenithError) || error.code !== 'VIM_NOT_AUTHENTICATED' || this.#closed)
        throw error;
      // The session is gone (expired, terminated, or the server restarted): log in again, once.
      await this.login();
      return this.#call(method, self, args, options.signal, options.emit);
    }
  }

  async logout(): Promise<void> {
    if (!this.#content || !this.#cookie) return;
    await this.#call('Logout', this.#content.sessionManager).catch(() => undefined);
    this.#cookie = undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#keepAlive.abort();
    await this.logout().catch(() => undefined);
    this.#closed = true;
    this.#transport.close();
  }

  async #retrieveServiceContent(): Promise<void> {
    const value = returnValue(await this.#call('RetrieveServiceContent', this.serviceInstance));
    const content = obj(value);
    const about = obj(content?.about);
    const need = (name: string) => {
      const found = ref(content?.[name]);
      if (!found)
        throw new ZenithError('VIM_PROTOCOL_ERROR', `the service content has no ${name}`, {
          field: name,
        });
      return found;
    };
    this.#content = {
      rootFolder: need('rootFolder'),
      propertyCollector: need('propertyCollector'),
      viewManager: need('viewManager'),
      sessionManager: need('sessionManager'),
      customFieldsManager: ref(content?.customFieldsManager),
      perfManager: ref(content?.perfManager),
      about: {
        fullName: str(about?.fullName) ?? '',
        apiType: str(about?.apiType) ?? '',
        apiVersion: str(about?.apiVersion) ?? '',
        instanceUuid: str(about?.instanceUuid) ?? '',
      },
    };
    if (this.#content.about.apiVersion)
      this.#soapAction = `urn:vim25/${this.#content.about.apiVersion}`;
  }

  async #call(
    method: string,
    self: MoRef,
    args: Record<string, VimArg> = {},
    signal?: AbortSignal,
    emit?: XmlEmit,
  ): Promise<XmlElement[]> {
    if (this.#closed)
      throw new ZenithError('VIM_CLOSED', 'the vSphere client is closed', { method });
    const started = performance.now();
    const headers: Record<string, string> = { soapaction: this.#soapAction };
    if (this.#cookie) headers.cookie = this.#cookie;
    this.stats.calls++;
    this.#lastCallAt = this.#clock.now();
    try {
      const reply = await this.#transport.post(
        encodeRequest(method, self, args),
        headers,
        signal,
        emit,
      );
      this.stats.bytesReceived += reply.bytes;
      for (const header of reply.setCookie) {
        const pair = header.split(';', 1)[0]!.trim();
        if (pair.startsWith('vmware_soap_session=')) this.#cookie = pair;
      }
      const returnvals = decodeReply(reply.root, method);
      if (vimCallChannel.hasSubscribers)
        vimCallChannel.publish({
          method,
          durationMs: performance.now() - started,
          bytes: reply.bytes,
        });
      return returnvals;
    } catch (error) {
      if (vimCallChannel.hasSubscribers)
        vimCallChannel.publish({ method, durationMs: performance.now() - started, error });
      if (error instanceof ZenithError && error.details.method === undefined)
        error.details.method = method;
      throw error;
    }
  }

  #startKeepAlive(): void {
    const every = this.#options.keepAliveMs ?? 10 * 60_000;
    if (every <= 0) return;
    const signal = this.#keepAlive.signal;
    (async () => {
      while (!signal.aborted) {
        await this.#clock.sleep(every, signal).catch(() => undefined);
        if (signal.aborted) return;
        if (this.#clock.now() - this.#lastCallAt < every) continue;
        await this.invoke('CurrentTime', this.serviceInstance).catch(() => undefined);
      }
      // Cannot fail: every await in it is caught.
    })().catch(() => undefined);
  }
}
