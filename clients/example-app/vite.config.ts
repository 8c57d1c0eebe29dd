import { defineConfig, loadEnv } from "vite";

// The app's two origins, fixed so that the API's APP_CORS_ORIGINS can name them.
export default defineConfig(({ command, mode }) => {
  const env = loadEnv(mode, process.cwd(), "VITE_");
  if (command === "build" && !env.VITE_SIGNING_KEY) {
    // A bundle without its environment's key would be refused by every server but
    // `backoffice dev`: say so now, not at the first request.
    throw new Error("VITE_SIGNING_KEY is not set: build with the target environment's key");
  }
  return {
    server: { host: "127.0.0.1", port: 5173, strictPort: true },
    preview: { host: "127.0.0.1", port: 4173, strictPort: true },
  };
});
