import Dockerode from 'dockerode';

// docker-modem reads DOCKER_HOST (and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) itself.
export function createTestDocker(): Dockerode {
  return new Dockerode();
}

export async function removeBerthContainers(docker: Dockerode): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: ['berth.managed=true'] },
  });
  await Promise.all(
    containers.map(async (c) => {
      try {
        await docker.getContainer(c.Id).remove({ force: true, v: true });
      } catch (err) {
        // Already gone, or berth itself is removing it right now: both are fine here.
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 404 && status !== 409) throw err;
      }
    }),
  );
}
