/**
 * The liveness facet: how long the driver's own channel to its one host has been silent. High
 * availability watches a host that runs no Zenith agent by it — a libvirt daemon's RPC connection,
 * asked after every second of silence (keepalive) — and declares the host failed once it has been
 * silent for the detection time. Only a driver whose connection is one host has it; while the
 * connection is down the driver is gone, and the silence counts from when it was last heard.
 */
export interface LivenessFacet {
  /** ms since the host last said anything on the driver's channel (the channel is open now). */
  silentMs(): number;
}
