/**
 * Which images a service may run. A service's repository is
 * `{BERTH_IMAGE_PREFIX}{account}/{service}` unless the admin names another; a
 * `sha256:` digest runs only when the engine's image of that digest belongs to
 * the service's repository; and a registry host is one berth was told to trust,
 * since naming any other makes the engine dial it (for example the host's own
 * loopback).
 */
import { isEngineUnreachable } from '../../scheduler/engine.ts';
import type { ImageReferences } from '../../scheduler/engine.ts';
import { BerthError, ValidationError } from '../core/errors.ts';
import { DockerUnavailableError } from '../core/errors.ts';

/** The engine's answer for an image id or reference; undefined when it has none. */
export type ImageLookup = (reference: string) => Promise<ImageReferences | undefined>;

export interface ImagePolicyOptions {
  /** BERTH_IMAGE_PREFIX. */
  imagePrefix: string;
  /** BERTH_ALLOWED_REGISTRIES, lowercase hosts with their ports. */
  allowedRegistries: readonly string[];
  lookup: ImageLookup;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export class RegistryNotAllowedError extends ValidationError {
  constructor(param: string, registry: string) {
    super(
      param,
      `"${param}" names registry "${registry}", which this berth does not pull from (allowed: the engine's local images, BERTH_IMAGE_PREFIX's registry and BERTH_ALLOWED_REGISTRIES)`,
      'registry_not_allowed',
    );
  }
}

/** A 403, not a 400: the same body from the admin token is fine. */
export class ForeignImageError extends BerthError {
  constructor(repository: string) {
    super(403, 'forbidden_error', 'image_requires_admin', `"body.image" may only be "${repository}" (the service's own repository) unless the admin token sets it`, {
      details: { param: 'body.image' },
    });
  }
}

/**
 * The registry host a repository names, or null for the engine's default
 * registry. Docker's rule: the first component is a host when there is a
 * second one and it contains "." or ":" or is "localhost".
 */
export function registryOf(repository: string): string | null {
  const slash = repository.indexOf('/');
  if (slash === -1) return null;
  const first = repository.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first.toLowerCase() : null;
}

/** How the engine writes a Docker Hub repository in RepoTags: no `docker.io/`, no `library/`. */
function familiarName(repository: string): string {
  const withoutHub = repository.replace(/^(?:docker\.io|index\.docker\.io)\//, '');
  return /^library\/[^/]+$/.test(withoutHub) ? withoutHub.slice('library/'.length) : withoutHub;
}

export function isDigest(tag: string): boolean {
  return DIGEST.test(tag);
}

export class ImagePolicy {
  private readonly imagePrefix: string;
  private readonly allowedRegistries: ReadonlySet<string>;
  private readonly lookup: ImageLookup;

  constructor(options: ImagePolicyOptions) {
    this.imagePrefix = options.imagePrefix;
    this.lookup = options.lookup;
    const prefixRegistry = registryOf(options.imagePrefix);
    this.allowedRegistries = new Set([...options.allowedRegistries, ...(prefixRegistry ? [prefixRegistry] : [])]);
  }

  defaultRepository(accountName: string, serviceName: string): string {
    return `${this.imagePrefix}${accountName}/${serviceName}`;
  }

  /** The repository a new service gets: `image` is the admin's to choose; an account token may only repeat the default. */
  repositoryForNewService(accountName: string, serviceName: string, image: string | undefined, isAdmin: boolean): string {
    const fallback = this.defaultRepository(accountName, serviceName);
    if (image === undefined || image === fallback) return fallback;
    if (!isAdmin) throw new ForeignImageError(fallback);
    this.checkRegistry(image, 'body.image');
    return image;
  }

  /** Refuses a repository on a registry berth was not told to trust. */
  checkRegistry(repository: string, param: string): void {
    const registry = registryOf(repository);
    if (registry !== null && !this.allowedRegistries.has(registry)) throw new RegistryNotAllowedError(param, registry);
  }

  /**
   * The reference to create a container from: `repository:tag`, or for a
   * digest the image it names once the engine shows it belongs to the
   * repository. Only digests cost an engine round trip.
   */
  async imageReference(repository: string, tag: string, param: string): Promise<string> {
    this.checkRegistry(repository, 'service.image_name');
    if (!isDigest(tag)) return `${repository}:${tag}`;
    return this.resolveDigest(repository, tag, param);
  }

  /** A digest is an image id or a registry manifest digest; either must carry a name in the repository. */
  async resolveDigest(repository: string, digest: string, param: string): Promise<string> {
    const name = familiarName(repository);
    try {
      const byId = await this.lookup(digest);
      if (byId && (byId.repoTags.some((t) => t.startsWith(`${name}:`)) || byId.repoDigests.some((d) => d.startsWith(`${name}@`)))) {
        return digest;
      }
      const pinned = `${name}@${digest}`;
      const byManifest = await this.lookup(pinned);
      if (byManifest?.repoDigests.includes(pinned)) return pinned;
    } catch (error) {
      if (isEngineUnreachable(error)) throw new DockerUnavailableError(error);
      throw error;
    }
    // One answer whether the image is absent or belongs to another repository: nothing to learn about other tenants.
    throw new ValidationError(param, `"${param}" is not the digest of an image of repository "${repository}" on this engine`, 'image_not_in_repository');
  }
}
