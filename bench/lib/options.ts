/** Integer settings of the benches, from a flag or the environment (the flag wins). */

/** `envName`'s value (or `flag`'s, when given); `fallback` when neither is set; throws on anything but an integer ≥ min. */
export function intOption(envName: string, fallback: number, { flag, min = 1 }: { flag?: string; min?: number } = {}): number {
  const raw = flag ?? process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${envName}${flag === undefined ? '' : ' / flag'}: expected an integer ≥ ${min}, got ${raw}`);
  return value;
}
