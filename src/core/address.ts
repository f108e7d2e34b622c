/** Where a backend's port 8080 is reached: the node's address and the port published on it. Never an implied loopback. */
export interface HostAddress {
  host: string;
  port: number;
}

/** `host:port`, with an IPv6 host in brackets. */
export function formatAddress({ host, port }: HostAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The inverse of formatAddress; undefined for anything else. */
export function parseAddress(text: string): HostAddress | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}
