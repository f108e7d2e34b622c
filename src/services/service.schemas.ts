import { z } from 'zod';
import { NAME } from '../http/validation.ts';

const PATH_COMPONENT = '[a-z0-9]+(?:[._-]+[a-z0-9]+)*';
/** A Docker repository name without tag: optional registry host, then path components. */
export const REPOSITORY = z
  .string()
  .max(255)
  .regex(new RegExp(`^(?:[a-z0-9.-]+(?::\\d+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`), 'must be a Docker repository name such as "acme/chat"');

/** A Docker tag, or an image digest written `sha256:<64 hex>`. */
export const IMAGE_TAG = z
  .string()
  .regex(/^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$/, 'must be a Docker tag (letters, digits, "_", ".", "-"; at most 128) or "sha256:<64 hex digits>"');

export const CREATE_SERVICE_BODY = z.strictObject({
  name: NAME,
  image: REPOSITORY.optional(),
});

export const UPDATE_SERVICE_BODY = z.strictObject({
  image_tag: IMAGE_TAG,
});
