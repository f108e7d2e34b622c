import type Dockerode from 'dockerode';
import type { Kysely } from 'kysely';
import { isEngineUnreachable } from '../../scheduler/docker.ts';
import { countLiveBackendsOfService } from '../backends/backend.repository.ts';
import { listRepositoryImages, type ImageInfo } from '../../scheduler/images.ts';
import type { Database } from '../database.ts';
import { ConflictError, NotFoundError, UnavailableError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import {
  deleteService,
  findService,
  insertService,
  lockService,
  listEnvironments,
  listServiceNames,
  upsertEnvironment,
} from './service.repository.ts';
import type { EnvironmentRow, ServiceRow } from './service.table.ts';

export const DEFAULT_ENVIRONMENT = 'default';
/** berth runs on the Docker hosts it is given; they form one cluster. */
export const LOCAL_CLUSTER = 'local';

export interface Environment {
  name: string;
  imageTag: string;
  cluster: string;
  createdAt: Date;
  lastSpawnedAt: Date | null;
}

export interface Service {
  accountName: string;
  name: string;
  imageRepository: string;
  createdAt: Date;
  lastSpawnedAt: Date | null;
  environments: Environment[];
  /** Newest image of the repository on the engine; null when there is none or the engine is down. */
  latestImage: ImageInfo | null;
}

export class ServiceNotFoundError extends NotFoundError {
  constructor(accountName: string, name: string) {
    super('service_not_found', `service "${name}" does not exist in account "${accountName}"`, {
      account: accountName,
      service: name,
    });
  }
}

export class DockerUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super('docker_unavailable', 'the Docker engine is not reachable', { cause, headers: { 'Retry-After': '5' } });
  }
}

export interface ServiceServiceOptions {
  db: Kysely<Database>;
  docker: Dockerode;
  logger: Logger;
  imagePrefix: string;
}

export class ServiceService {
  private readonly db: Kysely<Database>;
  private readonly docker: Dockerode;
  private readonly logger: Logger;
  private readonly imagePrefix: string;

  constructor(options: ServiceServiceOptions) {
    this.db = options.db;
    this.docker = options.docker;
    this.logger = options.logger;
    this.imagePrefix = options.imagePrefix;
  }

  defaultRepository(accountName: string, name: string): string {
    return `${this.imagePrefix}${accountName}/${name}`;
  }

  async createService(accountName: string, name: string, image: string | undefined): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const row = await insertService(trx, {
        account_name: accountName,
        name,
        image_repository: image ?? this.defaultRepository(accountName, name),
      });
      if (!row) {
        throw new ConflictError('service_exists', `service "${name}" already exists in account "${accountName}"`, {
          account: accountName,
          service: name,
        });
      }
      await trx
        .insertInto('environments')
        .values({ account_name: accountName, service_name: name, name: DEFAULT_ENVIRONMENT, image_tag: 'latest', cluster: LOCAL_CLUSTER })
        .execute();
    });
  }

  async listServiceNames(accountName: string): Promise<string[]> {
    return listServiceNames(this.db, accountName);
  }

  async getService(accountName: string, name: string): Promise<Service> {
    const row = await this.requireServiceRow(accountName, name);
    const environments = await listEnvironments(this.db, accountName, name);
    let latestImage: ImageInfo | null = null;
    try {
      latestImage = (await listRepositoryImages(this.docker, row.image_repository))[0] ?? null;
    } catch (error) {
      // The service itself lives in the database; an engine that is down only hides image facts.
      this.logger.warn({ err: error, repository: row.image_repository }, 'could not list images');
    }
    return serviceRowToService(row, environments, latestImage);
  }

  /** Refused while the service has live backends: their rows (and history) would go with it. */
  async deleteService(accountName: string, name: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      if (!(await lockService(trx, accountName, name))) throw new ServiceNotFoundError(accountName, name);
      const live = await countLiveBackendsOfService(trx, accountName, name);
      if (live > 0) {
        throw new ConflictError('service_has_backends', `service "${name}" has ${live} running backend(s); terminate them first`, {
          account: accountName,
          service: name,
          running_backends: live,
        });
      }
      await deleteService(trx, accountName, name);
    });
  }

  async listImages(accountName: string, name: string): Promise<ImageInfo[]> {
    const row = await this.requireServiceRow(accountName, name);
    try {
      return await listRepositoryImages(this.docker, row.image_repository);
    } catch (error) {
      if (isEngineUnreachable(error)) throw new DockerUnavailableError(error);
      throw error;
    }
  }

  async updateImageTag(accountName: string, name: string, environment: string, imageTag: string): Promise<void> {
    await this.requireServiceRow(accountName, name);
    await upsertEnvironment(this.db, {
      account_name: accountName,
      service_name: name,
      name: environment,
      image_tag: imageTag,
      cluster: LOCAL_CLUSTER,
    });
  }

  async imageRepository(accountName: string, name: string): Promise<string> {
    return (await this.requireServiceRow(accountName, name)).image_repository;
  }

  private async requireServiceRow(accountName: string, name: string): Promise<ServiceRow> {
    const row = await findService(this.db, accountName, name);
    if (!row) throw new ServiceNotFoundError(accountName, name);
    return row;
  }
}

function serviceRowToService(row: ServiceRow, environments: EnvironmentRow[], latestImage: ImageInfo | null): Service {
  return {
    accountName: row.account_name,
    name: row.name,
    imageRepository: row.image_repository,
    createdAt: row.created_at,
    lastSpawnedAt: row.last_spawned_at,
    environments: environments.map((env) => ({
      name: env.name,
      imageTag: env.image_tag,
      cluster: env.cluster,
      createdAt: env.created_at,
      lastSpawnedAt: env.last_spawned_at,
    })),
    latestImage,
  };
}
