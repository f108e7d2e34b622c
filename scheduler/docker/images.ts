import type Dockerode from 'dockerode';
import { imagesOfRepository, type ImageInfo, type ImageReferences } from '../engine.ts';

// The engine's `reference` filter is a glob: a repository written with these would list other repositories.
const GLOB_CHARACTERS = /[*?[\]\\]/;

/** Images of one repository as the Docker engine has them, newest first. */
export async function listRepositoryImages(docker: Dockerode, repository: string): Promise<ImageInfo[]> {
  if (GLOB_CHARACTERS.test(repository)) throw new Error(`repository ${JSON.stringify(repository)} contains glob characters`);
  const images = await docker.listImages({ filters: JSON.stringify({ reference: [repository] }) });
  return imagesOfRepository(
    images.map((image) => ({ id: image.Id, repoTags: image.RepoTags ?? [], repoDigests: image.RepoDigests ?? [], created: image.Created })),
    repository,
  );
}

/** What the engine knows of an image id or reference; undefined when it has no such image. */
export async function inspectImageReferences(docker: Dockerode, reference: string): Promise<ImageReferences | undefined> {
  try {
    const info = await docker.getImage(reference).inspect();
    return { id: info.Id, repoTags: info.RepoTags ?? [], repoDigests: info.RepoDigests ?? [] };
  } catch (error) {
    if ((error as { statusCode?: unknown }).statusCode === 404) return undefined;
    throw error;
  }
}
