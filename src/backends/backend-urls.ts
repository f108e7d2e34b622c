import type { BerthConfig } from '../config.ts';

/** The URLs a connect hands out, from the public base URLs of the configuration. */
export function backendUrls(config: BerthConfig, backendId: string, token: string) {
  return {
    url: config.proxyDomain ? `https://${backendId}.${config.proxyDomain}/${token}/` : `${config.publicProxyUrl}/${token}/`,
    ready_url: `${config.publicApiUrl}/ready/${backendId}/${token}/`,
    status_url: `${config.publicApiUrl}/v2/backend/${backendId}/status`,
  };
}
