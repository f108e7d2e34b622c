import type Dockerode from 'dockerode';

export interface ImageInfo {
  /** The local image id (`sha256:…`); a locally built image has no registry digest. */
  digest: string;
  tag: string;
  repository: string;
  uploadTime: Date;
}

/** Images of one repository as the Docker engine has them, newest first. */
export async function listRepositoryImages(docker: Dockerode, repository: string): Promise<ImageInfo[]> {
  const images = await docker.listImages({ filters: JSON.stringify({ reference: [repository] }) });
  const prefix = `${repository}:`;
  return images
    .flatMap((image) =>
      (image.RepoTags ?? [])
        .filter((repoTag) => repoTag.startsWith(prefix))
        .map((repoTag) => ({
          digest: image.Id,
          tag: repoTag.slice(prefix.length),
          repository,
          uploadTime: new Date(image.Created * 1000),
        })),
    )
    .sort((a, b) => b.uploadTime.getTime() - a.uploadTime.getTime() || a.tag.localeCompare(b.tag));
}
