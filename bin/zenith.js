#!/usr/bin/env node
// The `zenith` command: runs the TypeScript sources through tsx, so there is no build step to forget.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
await import(
  pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.ts')).href
);
