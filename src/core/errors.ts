/**
 * The one catalogue of stable error codes. Every error that crosses a module,
 * process or HTTP boundary carries one of these codes; callers branch on the
 * code, never on the message. docs/errors.md documents each code and a test
 * keeps the two in sync.
 */

export interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly status: number;
  /** One sentence: what happened and what the caller can do. */
  readonly summary: string;
}

export const errorCatalogue = {
  // --- request and input --------------------------------------------------
  ZEN_BAD_REQUEST: {
    status: 400,
    summary:
      'The request is malformed: wrong types, unknown fields or missing values. Fix the request as the details say.',
  },
  ZEN_BAD_FILTER: {
    status: 400,
    summary:
      'A list filter could not be parsed. Use KEY OP VALUE with OP one of = != > >= < <= ~ and an optional ! before KEY for absence.',
  },
  ZEN_BAD_CURSOR: {
    status: 400,
    summary: 'The pagination cursor is not one this server issued. Start again without a cursor.',
  },
  ZEN_BAD_ID: {
    status: 400,
    summary: 'An id does not have the expected prefix and form (for example vm_…, host_…).',
  },
  ZEN_URI_TOO_LONG: {
    status: 414,
    summary:
      'A path segment is longer than the server accepts (ids and names are at most a few hundred characters).',
  },
  ZEN_PAYLOAD_TOO_LARGE: {
    status: 413,
    summary: 'The request body is larger than the server accepts.',
  },
  ZEN_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: 'The request body must be JSON (Content-Type: application/json).',
  },
  ZEN_NOT_FOUND: {
    status: 404,
    summary: 'No object with that id or name exists, or you may not see it.',
  },
  ZEN_ROUTE_NOT_FOUND: { status: 404, summary: 'No API route matches this method and path.' },
  ZEN_CONFLICT: {
    status: 409,
    summary: 'The change conflicts with the current state (a duplicate name, or an object in use).',
  },
  ZEN_DISK_IN_USE: {
    status: 409,
    summary:
      "A disk image belongs to another VM, or backs another VM's disk: a VM may use only its own disks, and images no VM writes.",
  },
  ZEN_INVALID_STATE: {
    status: 409,
    summary:
      'The object is not in a state that allows this action (for example starting a running VM).',
  },
  ZEN_READ_ONLY_FACT: {
    status: 409,
    summary:
      'The fact is discovered from the hypervisor and cannot be written; write a user fact under user.* instead.',
  },
  ZEN_BAD_RATE_CARD: {
    status: 400,
    summary:
      'A rate card is invalid (an unknown window, a price that is not a decimal, a bad time zone or currency); details name the field.',
  },
  ZEN_REPORT_TOO_LARGE: {
    status: 422,
    summary:
      'The report would have more rows than the server returns at once; narrow the period, coarsen the granularity or group by a wider dimension.',
  },
  ZEN_RATE_CARD_IN_EFFECT: {
    status: 409,
    summary:
      'A rate card version has taken effect and is part of the priced past: it cannot be withdrawn (add a new version instead).',
  },
  // --- policies and placement -------------------------------------------
  ZEN_POLICY_SYNTAX: {
    status: 400,
    summary:
      'A policy expression could not be parsed; details give the line, the column and what was expected there.',
  },
  ZEN_POLICY_INVALID: {
    status: 400,
    summary:
      'A policy is well-formed but wrong (an unknown fact root or function, a type mismatch, a misplaced setting); details say where.',
  },
  ZEN_POLICY_EVALUATION: {
    status: 422,
    summary:
      'A policy expression failed on the facts of a real object (for example comparing a string with a number); details give its line and column.',
  },
  ZEN_NO_PLACEMENT: {
    status: 409,
    summary:
      'No host satisfies the VM: details list why each host was rejected (the same as POST /placement/preview shows).',
  },
  ZEN_HA_ADMISSION: {
    status: 409,
    summary:
      "Refused by high availability's admission control: with the VM created, started or moved there, some failure of as many hosts as a policy's hostFailuresToTolerate would leave protected VMs that no host can restart; details name the failed hosts, the VMs and why no host takes them (see high-availability.md). Not forced: lower hostFailuresToTolerate (0 turns it off) to act anyway.",
  },
  ZEN_PLAN_STALE: {
    status: 409,
    summary:
      'The plan no longer fits the inventory (a VM or host changed since it was computed); compute a new plan.',
  },
  ZEN_PLAN_INFEASIBLE: {
    status: 409,
    summary:
      'The moves cannot be ordered without breaking capacity or anti-affinity at some point; details name the moves that wait on each other.',
  },
  // --- identity -----------------------------------------------------------
  ZEN_UNAUTHENTICATED: {
    status: 401,
    summary:
      'No valid credentials were presented. Log in (zenith login) or send a valid API token.',
  },
  ZEN_BAD_CREDENTIALS: { status: 401, summary: 'The user name or password is wrong.' },
  ZEN_DIRECTORY_UNAVAILABLE: {
    status: 503,
    summary:
      'The LDAP/Active Directory server cannot be reached, so directory users cannot log in now; local accounts still can. Try again later or ask an administrator.',
  },
  ZEN_TOKEN_EXPIRED: {
    status: 401,
    summary: 'The session or token has expired or was revoked. Log in again.',
  },
  ZEN_CREDENTIAL_REVOKED: {
    status: 401,
    summary:
      "The agent's certificate, or the agent itself, was revoked. Enroll the host again with a new one-time token.",
  },
  ZEN_CERTIFICATE_EXPIRED: {
    status: 401,
    summary:
      "The agent's certificate has expired (it was not renewed in time). Enroll the host again with a new one-time token.",
  },
  ZEN_CERTIFICATE_INVALID: {
    status: 401,
    summary:
      "The agent's certificate was not issued by this Zenith's CA, is not yet valid or malformed, or the agent could not prove it holds its key.",
  },
  ZEN_CURRENT_PASSWORD_WRONG: {
    status: 403,
    summary:
      'The current password given to change your own password is wrong; nothing was changed and your session stays. Failed tries count like failed logins.',
  },
  ZEN_FORBIDDEN: {
    status: 403,
    summary: 'You are authenticated but your role does not allow this action here.',
  },
  ZEN_RATE_LIMITED: {
    status: 429,
    summary:
      'Too many failed attempts or requests. Wait for the time given in details.retryAfterSeconds.',
  },
  ZEN_WEAK_PASSWORD: {
    status: 400,
    summary: 'The password is too short or too simple; use at least 12 characters.',
  },
  ZEN_QUOTA_EXCEEDED: {
    status: 409,
    summary:
      'The request would take a group over its quota (or a quota of a group it is nested in); details name the group, the resource, the limit, what is used and reserved, and what was requested.',
  },
  ZEN_GROUP_REQUIRED: {
    status: 400,
    summary:
      'You are in several groups: name the group the new VM belongs to with the group field (details list your groups).',
  },
  // --- hypervisors and tasks ----------------------------------------------
  ZEN_UNSUPPORTED: {
    status: 422,
    summary:
      "This connection's driver does not support the operation; see the connection's capabilities.",
  },
  ZEN_CONNECTION_FAILED: {
    status: 502,
    summary:
      'The hypervisor or manager behind a connection could not be reached or refused the request.',
  },
  ZEN_CONNECTION_AUTH_FAILED: {
    status: 502,
    summary:
      "The hypervisor refused the connection's credentials (client certificate, CA, key or authentication method); fix the connection's settings or secret.",
  },
  ZEN_CONNECTION_DISCONNECTED: {
    status: 409,
    summary: 'The connection that owns this object is not connected; reconnect it and try again.',
  },
  ZEN_NO_CAPACITY: {
    status: 409,
    summary: 'The target host does not have the capacity (CPU, memory) for this VM.',
  },
  ZEN_DRIVER_ERROR: {
    status: 502,
    summary:
      'The hypervisor reported an error while carrying out the action; details carry its own code and message.',
  },
  ZEN_STORAGE_ROOT_UNREADABLE: {
    status: 502,
    summary:
      "A host's storage root could not be scanned for images (it does not exist, is not a directory, or cannot be read); details name the root and the host's reason. The other roots are still scanned.",
  },
  ZEN_IMAGE_CORRUPT: {
    status: 422,
    summary:
      'An image file says it is of a format (a qcow2 or VMDK header, an .iso name) but its header is not a valid one: the library lists it with this problem; nothing may use it until it is repaired or replaced.',
  },
  ZEN_TASK_INTERRUPTED: {
    status: 409,
    summary:
      'The task was running when the control plane stopped and could not be completed safely; check the object and try again.',
  },
  ZEN_TASK_CANCELLED: { status: 409, summary: 'The task was cancelled before it completed.' },
  ZEN_TIMEOUT: { status: 504, summary: 'An operation did not finish within its time limit.' },
  ZEN_AGENT_INCOMPATIBLE: {
    status: 426,
    summary:
      'A host agent speaks another major version of the agent channel protocol than the control plane, so its channel was refused: upgrade the agent to the control plane’s version (or the control plane, when the agent is newer); details give both versions.',
  },
  ZEN_HA_HEARTBEAT_INVALID: {
    status: 502,
    summary:
      'A storage heartbeat file of high availability is not a heartbeat (not JSON, truncated, or a field of the wrong shape): the host that wrote it cannot be judged by it; details name the field.',
  },
  // --- audit and store ----------------------------------------------------
  ZEN_AUDIT_CHAIN_BROKEN: {
    status: 500,
    summary:
      'Audit verification found a record that was edited, deleted or reordered; details name the first one.',
  },
  ZEN_AUDIT_UNAVAILABLE: {
    status: 503,
    summary:
      'The audit trail cannot be written now, so changes are refused until it can; a change that had already run when this was found is in the server log. Try again later.',
  },
  ZEN_STORE_UNAVAILABLE: {
    status: 503,
    summary: 'The database could not be reached or is not initialised.',
  },
  ZEN_SHUTTING_DOWN: {
    status: 503,
    summary:
      'The server is stopping: open event streams and consoles end with this code. Connect again (to another replica, or once it is back).',
  },
  ZEN_MIGRATION_FAILED: {
    status: 500,
    summary: 'A schema migration failed; the store was left at the previous version.',
  },
  ZEN_CONFIG_INVALID: {
    status: 400,
    summary:
      'A setting (flag, environment variable or config file) is invalid; the message names it.',
  },
  // --- QMP (QEMU Machine Protocol client, src/protocols/qmp) -------------
  QMP_CONNECT_FAILED: {
    status: 502,
    summary:
      'The QMP socket of a QEMU process could not be opened (missing socket file, refused, or no greeting in time).',
  },
  QMP_COMMAND_FAILED: {
    status: 502,
    summary:
      'QEMU refused a QMP command; details carry its error class, description and the command name.',
  },
  QMP_TIMEOUT: {
    status: 504,
    summary: 'QEMU did not answer a QMP command within its time limit; details name the command.',
  },
  QMP_CLOSED: {
    status: 502,
    summary:
      'The QMP connection closed (QEMU exited or the client was closed) before the command was answered.',
  },
  QMP_JOB_FAILED: {
    status: 502,
    summary:
      "A QEMU job (a snapshot's save, load or delete, a mirror, a replica point's fold) concluded with an error; details carry the job id, its type and QEMU's message.",
  },
  QMP_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'QEMU sent something that is not valid QMP (bad JSON, an oversized line, an unmatched reply); the connection was closed.',
  },
  // --- protocols: QGA (QEMU guest agent client, src/protocols/qga) --------
  QGA_CONNECT_FAILED: {
    status: 502,
    summary: "The host side of a VM's guest agent channel (a unix socket) could not be opened.",
  },
  QGA_COMMAND_FAILED: {
    status: 502,
    summary:
      'The guest agent refused a command; details carry the command, its error class and description.',
  },
  QGA_TIMEOUT: {
    status: 504,
    summary:
      'The guest agent did not answer a command (or the sync before it) in time: no agent runs in the guest, or it is stuck; details name the command.',
  },
  QGA_CLOSED: {
    status: 502,
    summary:
      'The guest agent channel closed (QEMU exited or the client was closed) before the command was answered.',
  },
  QGA_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'The guest agent sent something that is not QGA (bad JSON, an oversized answer, an answer of the wrong type).',
  },
  // --- protocols: NBD (Network Block Device client, src/protocols/nbd) ------
  NBD_CONNECT_FAILED: {
    status: 502,
    summary:
      'The NBD server could not be reached or did not finish negotiating in time (missing socket, refused, or silent).',
  },
  NBD_OPTION_REFUSED: {
    status: 502,
    summary:
      'The NBD server refused an option during negotiation (an unknown export, a metadata context such as a dirty bitmap it does not offer); details name the option and its reply.',
  },
  NBD_COMMAND_FAILED: {
    status: 502,
    summary:
      'The NBD server answered a read, write or block-status request with an error, or the request was outside the export; details carry the command, range and error.',
  },
  NBD_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'The NBD server sent something the protocol does not allow (bad magic, a reply to no request, a malformed chunk); the connection was closed.',
  },
  NBD_CLOSED: {
    status: 502,
    summary:
      'The NBD connection closed before a request was answered (the server exited or the client was closed).',
  },
  // --- protocols: the agent channel (src/protocols/agent-channel) ----------
  AGENT_CHANNEL_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'A message on the agent channel does not follow the protocol (not JSON, no type, or a field of the wrong shape; a call’s arguments or result that do not fit the call); details name the field.',
  },
  // --- protocols: XDR and the libvirt remote protocol -----------------------
  XDR_DECODE_ERROR: {
    status: 502,
    summary:
      'A peer sent bytes that are not valid XDR for the expected message (truncated, out of range or too long).',
  },
  XDR_ENCODE_ERROR: {
    status: 500,
    summary:
      'A value could not be encoded as the declared XDR type (out of range, too long or missing).',
  },
  LIBVIRT_RPC_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'The libvirt peer broke the RPC protocol (bad framing, oversized or unexpected packet); the connection was closed.',
  },
  LIBVIRT_RPC_ERROR: {
    status: 502,
    summary:
      "libvirt refused or failed the call; details carry libvirt's own code, domain, message and level.",
  },
  LIBVIRT_RPC_CLOSED: {
    status: 503,
    summary:
      'The libvirt connection is closed (by us, by the peer, or after missed keepalives); open a new one.',
  },
  LIBVIRT_RPC_CONNECT_FAILED: {
    status: 502,
    summary:
      'The libvirt daemon could not be reached (socket, TCP or TLS connection failed); details say where.',
  },
  LIBVIRT_RPC_AUTH_UNSUPPORTED: {
    status: 502,
    summary:
      'The libvirt daemon asks for an authentication method this client does not implement (only none and polkit are).',
  },
  LIBVIRT_RPC_TIMEOUT: {
    status: 504,
    summary: 'A libvirt call got no reply within its time limit.',
  },
  LIBVIRT_XML_INVALID: {
    status: 502,
    summary:
      'libvirt sent an XML description (domain, capabilities, network, pool, snapshot) that is not well-formed, declares entities, or lacks a required element.',
  },
  // --- protocols: VIM (the vSphere SOAP API, src/protocols/vim) ------------
  VIM_CONNECT_FAILED: {
    status: 502,
    summary:
      'The vSphere endpoint could not be reached (refused, unreachable, TLS handshake or HTTP failure); details say where and why.',
  },
  VIM_CERTIFICATE_REJECTED: {
    status: 502,
    summary:
      "The vSphere endpoint's TLS certificate is not trusted: not signed by a trusted or configured CA, or not the pinned thumbprint; details carry the thumbprint it presented.",
  },
  VIM_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'The vSphere peer sent a reply that is not valid SOAP (malformed, truncated, oversized, or not the expected shape).',
  },
  VIM_INVALID_LOGIN: {
    status: 502,
    summary: 'vCenter or ESXi refused the user name or password of the connection.',
  },
  VIM_NOT_AUTHENTICATED: {
    status: 502,
    summary: 'The vSphere session is not (or no longer) logged in, and logging in again failed.',
  },
  VIM_NO_PERMISSION: {
    status: 502,
    summary:
      "The connection's vSphere account lacks a privilege for this operation; details name the object and privilege.",
  },
  VIM_NOT_FOUND: {
    status: 404,
    summary: 'The vSphere object no longer exists (deleted behind Zenith, or a stale reference).',
  },
  VIM_INVALID_STATE: {
    status: 409,
    summary:
      "vSphere refused the operation in the object's current state (for example powering on a running VM).",
  },
  VIM_NOT_SUPPORTED: {
    status: 422,
    summary:
      'The vSphere endpoint does not implement this operation (a method or feature absent from this server or version).',
  },
  VIM_TOOLS_UNAVAILABLE: {
    status: 409,
    summary:
      'The operation needs VMware Tools running in the guest (guest shutdown or reboot), and they are not.',
  },
  VIM_FAULT: {
    status: 502,
    summary: 'vSphere answered with another fault; details carry its type and message.',
  },
  VIM_TIMEOUT: {
    status: 504,
    summary: 'A vSphere call or task did not finish within its time limit.',
  },
  VIM_CLOSED: {
    status: 503,
    summary: 'The vSphere client was closed before the call completed.',
  },
  // --- protocols: Redfish (BMCs over HTTPS and JSON, src/protocols/redfish) ---
  REDFISH_CONNECT_FAILED: {
    status: 502,
    summary:
      'The BMC could not be reached over HTTPS (refused, unreachable, TLS handshake failed, or the connection dropped); details say where and why.',
  },
  REDFISH_CERTIFICATE_REJECTED: {
    status: 502,
    summary:
      "The BMC's TLS certificate is not trusted: not signed by a trusted or configured CA, or not the pinned thumbprint; details carry the thumbprint it presented.",
  },
  REDFISH_AUTH_FAILED: {
    status: 502,
    summary:
      'The BMC refused the user name or password of the connection (or the session ended and logging in again failed).',
  },
  REDFISH_PROTOCOL_ERROR: {
    status: 502,
    summary:
      'The BMC sent a reply that is not a Redfish resource (not JSON, truncated, oversized, or lacking a field the schema requires).',
  },
  REDFISH_REQUEST_FAILED: {
    status: 502,
    summary:
      "The BMC refused or failed a request with an HTTP error; details carry the status and Redfish's extended message ids.",
  },
  REDFISH_NOT_SUPPORTED: {
    status: 422,
    summary:
      'The BMC does not offer this resource, action or value (for example no VirtualMedia, or a ResetType it does not allow).',
  },
  REDFISH_TIMEOUT: {
    status: 504,
    summary: 'A Redfish request got no complete reply within its deadline.',
  },
  REDFISH_CLOSED: {
    status: 503,
    summary: 'The Redfish client was closed (or the call cancelled) before the request completed.',
  },
  // --- protocols: IPMI (BMCs over IPMI 2.0 LAN through ipmitool, src/protocols/ipmi) ---
  IPMI_UNREACHABLE: {
    status: 502,
    summary:
      'The BMC did not answer on its IPMI LAN port (no RMCP+ session could be started); details say where.',
  },
  IPMI_AUTH_FAILED: {
    status: 502,
    summary: 'The BMC refused the user name or password of the connection, or its privilege level.',
  },
  IPMI_TIMEOUT: {
    status: 504,
    summary: 'An ipmitool call did not finish within its deadline and was killed.',
  },
  IPMI_COMMAND_FAILED: {
    status: 502,
    summary:
      "The BMC refused or failed an IPMI command (for example a command it does not support); details carry ipmitool's message.",
  },
  IPMI_OUTPUT_INVALID: {
    status: 502,
    summary: "ipmitool's output could not be read as the expected answer.",
  },
  IPMI_TOOL_MISSING: {
    status: 503,
    summary:
      'ipmitool is not installed on this machine (Debian package ipmitool; the zenith commands install it).',
  },
  // --- BMC operations common to both protocols ---
  BMC_FENCE_UNCONFIRMED: {
    status: 502,
    summary:
      'Fencing could not confirm that the machine is off: the power-off request failed, or the BMC did not report power off before the deadline; details carry the last state seen and the attempts.',
  },
  BMC_POWER_UNCONFIRMED: {
    status: 502,
    summary:
      'A power action was accepted but the BMC did not read the power state it should give (on or off) before the deadline; details carry the state wanted and the last one read.',
  },
  BMC_POWER_FAILED: {
    status: 502,
    summary:
      'A power action through the BMC failed (the BMC refused it, could not be reached, or the task was cancelled); details carry the task and its error.',
  },
  ZEN_NO_BMC: {
    status: 409,
    summary:
      'The host has no BMC Zenith knows: add its BMC as a redfish or ipmi connection (the machine is then linked to the host by SMBIOS UUID, serial or a NIC MAC, or by hand).',
  },
  // --- the fallback ---------------------------------------------------------
  // --- backup ----------------------------------------------------------------
  ZEN_BACKUP_REPOSITORY_INVALID: {
    status: 409,
    summary:
      'The path is not a backup repository Zenith can use (no repository there, another format, or a repository made in a directory that was not empty).',
  },
  ZEN_BACKUP_KEY_WRONG: {
    status: 403,
    summary:
      'The backup repository is encrypted and the key given is missing or not its key; nothing was read or written.',
  },
  ZEN_BACKUP_CHUNK_DAMAGED: {
    status: 409,
    summary:
      'A chunk of a backup is missing or its bytes do not match its name (altered, cut or unreadable); the backups that use it are damaged and nothing was restored from it.',
  },
  ZEN_BACKUP_MANIFEST_DAMAGED: {
    status: 409,
    summary:
      "A backup's manifest does not read, does not have the manifest's shape or does not match its checksum; the backup cannot be restored.",
  },
  ZEN_BACKUP_REPOSITORY_FULL: {
    status: 507,
    summary:
      'The backup repository has no room left (or its quota is reached); the backup was not kept and nothing half-written names it.',
  },
  ZEN_BACKUP_RESTORE_TEST_FAILED: {
    status: 409,
    summary:
      'A restore test did not see the guest come up: the VM restored from the backup (with no network) did not write the awaited line on its serial console in time; the message holds its last output. The test VM was removed.',
  },
  ZEN_BACKUP_JOB_INCOMPLETE: {
    status: 409,
    summary:
      "A backup job's run ended with VMs not backed up (their backups failed or were cancelled), or with restore tests of its backups that failed; the message names them, and each one's task says why. The others were backed up (and tested) and kept.",
  },
  ZEN_RECOVERY_PLAN_BLOCKED: {
    status: 422,
    summary:
      'A recovery plan cannot run now: details.problems lists each VM without a ready replica, whose target host is gone or cannot take it, or that is recovered already. Nothing was started.',
  },
  ZEN_STORAGE_FULL: {
    status: 507,
    summary:
      "A host's storage has no room left (or its quota is reached) for a disk image being written: details.file and details.errno say which; the write was abandoned and nothing half-written stays under the image's name.",
  },
  ZEN_INTERNAL: {
    status: 500,
    summary: 'An unexpected error; it was logged with the request id. Please report it.',
  },
  ZEN_UNHANDLED_REJECTION: {
    status: 500,
    summary:
      'A zenith process found a failed operation nobody waited for (a bug): it logged this code with the error and exited with status 70 for its supervisor to restart it. Please report it with the log line.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalogue;

export type ErrorDetails = Record<string, unknown>;

/** An expected error: it carries a stable code and is safe to show to the caller. */
export class ZenithError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ZenithError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorCatalogue[this.code].status;
  }

  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details: ErrorDetails };
}

export function isZenithError(value: unknown): value is ZenithError {
  return value instanceof ZenithError;
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCatalogue, value);
}

/** Rebuilds a ZenithError from its wire form (API answers, agent messages). */
export function errorFromBody(body: unknown, fallbackMessage = 'request failed'): ZenithError {
  const error = (body as Partial<ErrorBody> | undefined)?.error;
  if (error && typeof error.code === 'string' && isErrorCode(error.code)) {
    return new ZenithError(error.code, error.message ?? fallbackMessage, error.details ?? {});
  }
  return new ZenithError('ZEN_INTERNAL', fallbackMessage, { body });
}

export function assertNever(value: never, what = 'value'): never {
  throw new ZenithError('ZEN_INTERNAL', `unexpected ${what}: ${String(value)}`);
}
