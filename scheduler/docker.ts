import Dockerode from 'dockerode';

/**
 * The Docker engine client. docker-modem reads DOCKER_HOST (unix:// or tcp://)
 * itself and falls back to /var/run/docker.sock.
 */
export function createDocker(): Dockerode {
  return new Dockerode();
}

/** Throws when the engine does not answer; used by health checks and readiness. */
export async function pingDocker(docker: Dockerode): Promise<void> {
  await docker.ping();
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'EPIPE']);

/** True when an error means "no engine answers", as opposed to an engine saying no. */
export function isEngineUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && UNREACHABLE_CODES.has(code);
}
