import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { BerthClient } from '../client/index.ts';
import { CliError } from './output.ts';

/** Where the CLI talks to when neither BERTH_URL nor a saved login names a berth. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** What `berth login` saves. */
export interface SavedLogin {
  url?: string;
  token?: string;
}

/** `$XDG_CONFIG_HOME/berth/config.json`, or `~/.config/berth/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'berth', 'config.json');
}

export async function readSavedLogin(path = configPath()): Promise<SavedLogin> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  try {
    const value = JSON.parse(text) as SavedLogin;
    return {
      ...(typeof value.url === 'string' ? { url: value.url } : {}),
      ...(typeof value.token === 'string' ? { token: value.token } : {}),
    };
  } catch {
    throw new CliError(`${path} is not valid JSON; run \`berth login\` again or remove it`);
  }
}

/** Writes the login readable by its owner only (0600; the directory 0700). */
export async function saveLogin(login: Required<SavedLogin>, path = configPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written aside and renamed, so a reader never sees half a file; the mode is set
  // before the token is in it, and again in case the file existed with another.
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, '', { mode: 0o600 });
  await chmod(temporary, 0o600);
  await writeFile(temporary, `${JSON.stringify({ url: login.url, token: login.token }, null, 2)}\n`);
  await rename(temporary, path);
}

/** The berth to talk to: BERTH_URL and BERTH_TOKEN win over the saved login, each on its own. */
export async function resolveLogin(env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; token: string | undefined }> {
  const saved = await readSavedLogin(configPath(env));
  return { url: env.BERTH_URL || saved.url || DEFAULT_URL, token: env.BERTH_TOKEN || saved.token };
}

export async function createClient(): Promise<BerthClient> {
  const { url, token } = await resolveLogin();
  return new BerthClient({ url, ...(token ? { token } : {}) });
}

/**
 * The account a command acts on: `--account`, or else the token's only
 * account (GET /auth). An admin token, or one with several accounts, needs
 * `--account`.
 */
export async function resolveAccount(client: BerthClient, account: string | undefined): Promise<string> {
  if (account) return account;
  const auth = await client.auth();
  const [only, ...others] = auth.accounts;
  if (only !== undefined && others.length === 0) return only;
  if (only === undefined) throw new CliError('this token may act on no account; pass --account <account>');
  throw new CliError(`this token may act on several accounts (${auth.accounts.join(', ')}); pass --account <account>`);
}
