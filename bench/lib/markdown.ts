/** Markdown output of the benches: number cells, tables, the problems section. */

/** A number with `digits` decimals, or – when it is not finite (no samples). */
export const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');

/** a / b with two decimals, or – when either is not finite or b is 0. */
export const ratio = (a: number, b: number): string =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? (a / b).toFixed(2) : '–';

export type Cell = string | number;

const tableRow = (cells: readonly Cell[]): string => `| ${cells.join(' | ')} |`;

/**
 * Prints a table: header, separator, then `rows`. `align` has one letter a
 * column: l (left) or r (right, for numbers).
 */
export function printTable(columns: readonly string[], align: string, rows: ReadonlyArray<readonly Cell[]>): void {
  if (align.length !== columns.length || !/^[lr]*$/.test(align)) throw new Error(`table align ${align} does not fit ${columns.length} columns`);
  console.log(tableRow(columns));
  console.log(`|${[...align].map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`);
  for (const row of rows) console.log(tableRow(row));
}

/**
 * Prints the problems, if any, and returns the exit code: 1 with problems,
 * else 130 when interrupted, else 0.
 */
export function reportProblems(problems: readonly string[], interrupted: boolean): number {
  if (problems.length > 0) {
    console.log('\n### Problems\n');
    for (const p of problems) console.log(`- ${p}`);
    return 1;
  }
  return interrupted ? 130 : 0;
}
