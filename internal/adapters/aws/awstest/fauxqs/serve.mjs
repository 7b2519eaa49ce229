// Starts fauxqs (SQS + S3 emulator) on 127.0.0.1 only; its CLI binds every
// interface. Arguments: the install directory (holding node_modules/fauxqs)
// and the port. Prints "fauxqs ready" once it listens.
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [dir, port] = process.argv.slice(1);
const dist = join(dir, "node_modules", "fauxqs", "dist");
const { buildApp } = await import(pathToFileURL(join(dist, "app.js")).href);
const { SqsStore } = await import(pathToFileURL(join(dist, "sqs", "sqsStore.js")).href);

const sqsStore = new SqsStore();
// An empty host makes queue URLs use the request's own host (127.0.0.1:port)
// instead of sqs.<region>.localhost, which does not resolve everywhere.
sqsStore.host = "";
const app = buildApp({ logger: false, stores: { sqsStore } });
await app.listen({ host: "127.0.0.1", port: Number(port) });
console.log("fauxqs ready");

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => app.close().then(() => process.exit(0)));
}
