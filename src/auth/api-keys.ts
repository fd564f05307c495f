import { createHash, timingSafeEqual } from "node:crypto";

/** Options of {@link createAuth}. */
export interface AuthOptions {
  /** Key required on admin calls (REST admin routes and every RPC); null = open. */
  adminApiKey: string | null;
  /** Key required on data-plane calls; null = open. */
  apiKey: string | null;
}

export interface Auth {
  readonly adminRequired: boolean;
  readonly dataRequired: boolean;
  /** Whether an `Authorization` header value carries the admin key. */
  admin(authorization: string | undefined | null): boolean;
  data(authorization: string | undefined | null): boolean;
  /** Which configured key the header carries (for the audit trail; never the key itself). */
  keyOf(authorization: string | undefined | null): "admin" | "data" | "none";
}

/**
 * Bearer-key checks. Keys are compared as SHA-256 digests with
 * timingSafeEqual: equal-length inputs, so neither the key's length nor the
 * position of the first wrong byte leaks through timing. The keys themselves
 * are never logged (the logger redacts authorization headers too).
 */
export function createAuth(options: AuthOptions): Auth {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const adminDigest = options.adminApiKey === null ? null : digest(options.adminApiKey);
  const dataDigest = options.apiKey === null ? null : digest(options.apiKey);
  const matches = (expected: Buffer | null, header: string | undefined | null): boolean => {
    if (expected === null) return true;
    if (typeof header !== "string") return false;
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!m) return false;
    return timingSafeEqual(digest(m[1]!), expected);
  };
  return {
    adminRequired: adminDigest !== null,
    dataRequired: dataDigest !== null,
    admin: (h) => matches(adminDigest, h),
    data: (h) => matches(dataDigest, h),
    keyOf: (h) => (adminDigest !== null && matches(adminDigest, h) ? "admin" : dataDigest !== null && matches(dataDigest, h) ? "data" : "none"),
  };
}
