import type { Kysely } from 'kysely';
import { isEngineUnreachable } from '../../scheduler/engine.ts';
import { countLiveBackendsOfService } from '../backends/backend.repository.ts';
import type { EngineReader, ImageInfo } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import { BerthError, ConflictError, DockerUnavailableError, NotFoundError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { isDigest, type ImagePolicy } from './image-policy.ts';
import {
  deleteService,
  findService,
  insertService,
  lockService,
  listEnvironments,
  listServiceNames,
  updateContainerSettings,
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
  /** Warm containers each node keeps for it. */
  warmPoolSize: number;
  /** Why its current image cannot be kept warm; null when it can (or has not been tried). */
  notWarmable: string | null;
}

/** How the admin set up this service's containers (on top of berth's hardening). */
export interface ContainerSettings {
  user: string | null;
  readOnlyRoot: boolean;
  capAdd: string[];
}

export interface Service {
  accountName: string;
  name: string;
  imageRepository: string;
  container: ContainerSettings;
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

/** Container settings are the operator's to choose: they widen what a tenant's code may do on the host. */
export class AdminOnlyFieldError extends BerthError {
  constructor(param: string) {
    super(403, 'forbidden_error', 'admin_required', `"${param}" may only be set with the admin token`, { details: { param } });
  }
}

export interface NewService {
  name: string;
  image?: string;
  user?: string;
  read_only_root?: boolean;
  cap_add?: string[];
}

export interface ContainerSettingsChange {
  user?: string | null;
  read_only_root?: boolean;
  cap_add?: string[];
}

export interface ServiceServiceOptions {
  db: Kysely<Database>;
  /** Where images are read from. */
  engine: Pick<EngineReader, 'listRepositoryImages'>;
  logger: Logger;
  imagePolicy: ImagePolicy;
}

export class ServiceService {
  private readonly db: Kysely<Database>;
  private readonly engine: Pick<EngineReader, 'listRepositoryImages'>;
  private readonly logger: Logger;
  private readonly imagePolicy: ImagePolicy;

  constructor(options: ServiceServiceOptions) {
    this.db = options.db;
    this.engine = options.engine;
    this.logger = options.logger;
    this.imagePolicy = options.imagePolicy;
  }

  async createService(accountName: string, service: NewService, caller: { isAdmin: boolean }): Promise<void> {
    const { name } = service;
    const adminOnly = (['user', 'read_only_root', 'cap_add'] as const).find((field) => service[field] !== undefined);
    if (adminOnly && !caller.isAdmin) throw new AdminOnlyFieldError(`body.${adminOnly}`);
    const imageRepository = this.imagePolicy.repositoryForNewService(accountName, name, service.image, caller.isAdmin);
    await this.db.transaction().execute(async (trx) => {
      const row = await insertService(trx, {
        account_name: accountName,
        name,
        image_repository: imageRepository,
        container_user: service.user ?? null,
        read_only_root: service.read_only_root ?? false,
        cap_add: service.cap_add ?? [],
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
      latestImage = (await this.engine.listRepositoryImages(row.image_repository))[0] ?? null;
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
      return await this.engine.listRepositoryImages(row.image_repository);
    } catch (error) {
      if (isEngineUnreachable(error)) throw new DockerUnavailableError(error);
      throw error;
    }
  }

  /** Admin only (the controller checks): applies to backends spawned from now on. */
  async updateContainerSettings(accountName: string, name: string, change: ContainerSettingsChange): Promise<void> {
    const settings = {
      ...(change.user !== undefined ? { container_user: change.user } : {}),
      ...(change.read_only_root !== undefined ? { read_only_root: change.read_only_root } : {}),
      ...(change.cap_add !== undefined ? { cap_add: change.cap_add } : {}),
    };
    const found = Object.keys(settings).length === 0 ? (await findService(this.db, accountName, name)) !== undefined : await updateContainerSettings(this.db, accountName, name, settings);
    if (!found) throw new ServiceNotFoundError(accountName, name);
  }

  /** Points an environment at an image tag and/or sets its warm pool; an environment is made by giving it a tag. */
  async updateEnvironment(accountName: string, name: string, environment: string, update: { imageTag?: string; warmPoolSize?: number }): Promise<void> {
    const row = await this.requireServiceRow(accountName, name);
    // Checked again at connect; here so that a foreign digest is refused where it is written.
    if (update.imageTag !== undefined && isDigest(update.imageTag)) await this.imagePolicy.resolveDigest(row.image_repository, update.imageTag, 'body.image_tag');
    const existing = (await listEnvironments(this.db, accountName, name)).find((env) => env.name === environment);
    const imageTag = update.imageTag ?? existing?.image_tag;
    if (imageTag === undefined) {
      throw new ValidationError('body.image_tag', `environment "${environment}" does not exist yet: "body.image_tag" is required to make it`);
    }
    await upsertEnvironment(this.db, {
      account_name: accountName,
      service_name: name,
      name: environment,
      image_tag: imageTag,
      cluster: LOCAL_CLUSTER,
      ...(update.warmPoolSize !== undefined ? { warm_pool_size: update.warmPoolSize } : {}),
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
    container: { user: row.container_user, readOnlyRoot: row.read_only_root, capAdd: row.cap_add },
    createdAt: row.created_at,
    lastSpawnedAt: row.last_spawned_at,
    environments: environments.map((env) => ({
      name: env.name,
      imageTag: env.image_tag,
      cluster: env.cluster,
      createdAt: env.created_at,
      lastSpawnedAt: env.last_spawned_at,
      warmPoolSize: env.warm_pool_size,
      notWarmable: env.warm_error_image !== null && env.warm_error_image === `${row.image_repository}:${env.image_tag}` ? env.warm_error : null,
    })),
    latestImage,
  };
}
