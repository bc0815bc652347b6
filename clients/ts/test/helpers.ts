import { readFileSync } from "node:fs";

/** The package root (clients/ts), from dist/test/*.js. */
export const root = new URL("../../", import.meta.url);

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export function unhex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
}

export function readJSON(rel: string | URL): any {
  return JSON.parse(readFileSync(typeof rel === "string" ? new URL(rel, root) : rel, "utf8"));
}
