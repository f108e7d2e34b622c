// Imported rather than read from disk: the build (tsconfig.build.json) then
// copies package.json beside the compiled sources, where the same path finds it.
import packageJson from '../package.json' with { type: 'json' };

/** berth's version, from package.json. */
export const VERSION: string = packageJson.version;
