import type { Role } from './roles.ts';

export interface ServeBannerFacts {
  role: Role;
  version: string;
  apiUrl: string;
  proxyUrl: string;
  /** Set only on the start that generated the admin token. */
  generatedAdminToken: string | undefined;
  /** BERTH_ADMIN_TOKEN was given. */
  adminTokenConfigured: boolean;
}

/**
 * What `berth serve` prints once it serves: where everything is and what to
 * type next. Plain text for a person; the log lines stay JSON for machines.
 */
export function serveBanner(facts: ServeBannerFacts): string {
  const { apiUrl, proxyUrl, role } = facts;
  const lines = [`berth ${facts.version} is serving (${ROLE_NAMES[role]})`];
  if (role === 'all' || role === 'api') {
    lines.push(`  API              ${apiUrl}`);
    lines.push(`  dashboard        ${apiUrl}/dashboard  (sign in with a token)`);
    lines.push(`  API description  ${apiUrl}/openapi.json`);
    lines.push(`  metrics          ${apiUrl}/metrics (admin token)`);
  }
  if (role === 'all' || role === 'proxy') lines.push(`  proxy            ${proxyUrl}  (connection URLs: ${proxyUrl}/{token}/)`);
  if (facts.generatedAdminToken) {
    // Printed once, on the start that generated it; only its hash is kept.
    lines.push(`berth: generated admin token (shown only now, keep it): ${facts.generatedAdminToken}`);
  }
  if (role === 'all' || role === 'api') {
    const token = facts.generatedAdminToken ?? (facts.adminTokenConfigured ? '"$BERTH_ADMIN_TOKEN"' : '<the admin token printed on the first start>');
    lines.push('Next:');
    lines.push(`  berth login --url ${apiUrl} --token ${token}`);
    lines.push('  berth account create acme    then `berth --help` for services, connect, logs');
    lines.push(`  Jamsocket's CLI and npm package talk to berth with JAMSOCKET_SERVER_API=${apiUrl}`);
  }
  return `${lines.join('\n')}\n`;
}

const ROLE_NAMES: Record<Role, string> = {
  all: 'API, proxy and scheduler',
  api: 'API only',
  proxy: 'proxy only',
  scheduler: 'scheduler only',
};
