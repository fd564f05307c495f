/** The router's version, reported by --version, GetRouterStatus and /metrics. */
export const VERSION = "0.1.0";
