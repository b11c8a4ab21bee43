// The web console's bundle: `npm run build:web` writes web/dist, which `zenith serve` serves at /.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2048 },
  // `npm run dev:web` proxies the API to a `zenith serve` on the default port.
  server: { proxy: { '/api': { target: 'http://127.0.0.1:7443', ws: true } } },
});
