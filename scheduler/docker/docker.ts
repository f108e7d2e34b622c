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
