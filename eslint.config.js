// STYLE.md asks for two checks: promises nobody awaits or handles (here) and
// import cycles (madge, in the lint script). DESIGN.md's dependency rule is
// checked here too, so that the layers cannot erode:
// - scheduler/ and proxy/ import only src/core/ of the control plane;
// - the API side (src/) imports no Docker: only the engine's interfaces and
//   types (scheduler/engine.ts, type imports elsewhere in scheduler/), and
//   only the process entry (src/berth.ts) and the `push` command build
//   concrete engines.
import tseslint from 'typescript-eslint';

const nodeAndProxy = {
  patterns: [
    {
      group: ['**/src/**', '!**/src/core', '!**/src/core/**'],
      message: 'scheduler/ and proxy/ may import only src/core/ of src/ (DESIGN.md, dependency rule).',
    },
  ],
};

const apiSide = {
  paths: [{ name: 'dockerode', message: 'The API side never talks to Docker: use the engine interfaces of scheduler/engine.ts.', allowTypeImports: false }],
  patterns: [
    {
      group: ['**/scheduler/docker/**'],
      message: 'The API side never talks to Docker: use the engine interfaces of scheduler/engine.ts.',
    },
    {
      group: ['**/scheduler/**', '!**/scheduler/engine.ts'],
      allowTypeImports: true,
      message: 'The API side imports only types from scheduler/ (and scheduler/engine.ts); src/berth.ts wires the rest.',
    },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'examples/counter/', 'test/fixtures/', 'test/support/loopback-only.cjs'] },
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    files: ['scheduler/**/*.ts', 'proxy/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', nodeAndProxy] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/berth.ts', 'src/cli/push.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', apiSide] },
  },
);
