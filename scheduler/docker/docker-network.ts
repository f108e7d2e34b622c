/**
 * The network every backend joins. Docker's default bridge lets containers
 * reach each other directly, which would let one tenant's backend call
 * another's port 8080 around the proxy and its x-verified-* headers; this
 * bridge turns inter-container communication off. Published ports on the
 * host still work, so the proxy is unaffected.
 */
import type Dockerode from 'dockerode';
import { LABELS } from '../engine.ts';

const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

export class BackendNetworkError extends Error {
  override readonly name = 'BackendNetworkError';

  constructor(
    readonly network: string,
    message: string,
  ) {
    super(message);
  }
}

function isConflict(error: unknown): boolean {
  return (error as { statusCode?: unknown }).statusCode === 409;
}

/** Creates the network when it is missing; refuses one of that name that would let backends talk. */
export async function ensureBackendNetwork(docker: Dockerode, name: string): Promise<void> {
  const existing = await findNetwork(docker, name);
  if (existing) return checkIsolated(existing, name);
  try {
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Options: { [ICC_OPTION]: 'false' },
      Labels: { [LABELS.managed]: 'true' },
    });
  } catch (error) {
    // Another berth on this engine created it in between: check that one instead.
    if (!isConflict(error)) throw error;
    const raced = await findNetwork(docker, name);
    if (!raced) throw error;
    checkIsolated(raced, name);
  }
}

async function findNetwork(docker: Dockerode, name: string): Promise<Dockerode.NetworkInspectInfo | undefined> {
  try {
    return (await docker.getNetwork(name).inspect()) as Dockerode.NetworkInspectInfo;
  } catch (error) {
    if ((error as { statusCode?: unknown }).statusCode === 404) return undefined;
    throw error;
  }
}

function checkIsolated(network: Dockerode.NetworkInspectInfo, name: string): void {
  if (network.Driver !== 'bridge' || network.Options?.[ICC_OPTION] !== 'false') {
    throw new BackendNetworkError(
      name,
      `Docker network "${name}" exists but is not a bridge with ${ICC_OPTION}=false; backends on it could reach each other. Remove it (berth recreates it) or set BERTH_BACKEND_NETWORK`,
    );
  }
}
