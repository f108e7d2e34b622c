import { UnavailableError } from '../core/errors.ts';

export class DockerUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super('docker_unavailable', 'the Docker engine is not reachable', { cause, headers: { 'Retry-After': '5' } });
  }
}
