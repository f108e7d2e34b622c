/**
 * Ctrl-C for the benches: the first SIGINT lets the bench finish what it is
 * doing and clean up; a second one exits at once with 130.
 */

/**
 * Installs the SIGINT handler; `current` names what is finished first
 * ("step", "scenario"). Returns whether Ctrl-C has been pressed.
 */
export function handleInterrupt(current: string): () => boolean {
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\ninterrupted: finishing the current ${current}, then cleaning up (Ctrl-C again to quit at once)`);
  });
  return () => interrupted;
}
