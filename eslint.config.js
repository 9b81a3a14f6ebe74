// ESLint for the whole workspace (flat config): typescript-eslint's recommended rules, plus the few
// type-aware rules that catch real bugs in async code (a promise nobody awaits, a promise where a callback
// is expected, `await` on a value that is not a promise). Formatting is Prettier's job (`.prettierrc.json`),
// so no stylistic rule is enabled here. `pnpm lint` runs both; `pnpm format` fixes what can be fixed.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: ['**/node_modules/', '**/dist/', '.data/', '.tap/', 'bench/results/', 'deploy/test/e2e/artifacts/']
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: { ...globals.node }
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Code built from strings is a hole; the one place that must (a page script) says so on its line.
      'no-new-func': 'error',
      'no-implied-eval': 'error',
      // `catch {}` is how a best-effort step (a process already gone) says that failing is fine.
      'no-empty': ['error', { allowEmptyCatch: true }],
      // The input rules match NUL and other control characters on purpose (PostgreSQL refuses NUL in text).
      'no-control-regex': 'off'
    }
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        // Scripts outside tsconfig.json's include are checked with the default project.
        projectService: { allowDefaultProject: ['services/*/scripts/*.ts'] },
        tsconfigRootDir: import.meta.dirname
      }
    },
    rules: {
      // Type-aware, and cheap enough to run on every lint.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap queues subtests itself (`t.test(...)` need not be awaited); any other promise must be handled.
          allowForKnownSafeCalls: [
            { from: 'package', package: '@tapjs/core', name: ['test', 'todo', 'skip', 'only'] },
            { from: 'package', package: '@tapjs/test', name: ['test', 'todo', 'skip', 'only'] }
          ]
        }
      ],
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } }
      ],
      '@typescript-eslint/await-thenable': 'error',
      // An unused variable is a bug or dead code; `_name` marks one kept on purpose (a destructured rest).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }]
    }
  },
  {
    // Tests read JSON answers whose shape the test itself asserts: `any` there is the honest type.
    files: ['**/test/**/*.ts', 'bench/**/*.ts', 'services/*/scripts/**/*.ts', 'deploy/docker/test-images.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' }
  }
)
