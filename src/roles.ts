/** The parts of berth one process can run (`berth serve --role`). Its own module so the CLI can list them without loading berth. */
export const ROLES = ['api', 'proxy', 'scheduler', 'all'] as const;
export type Role = (typeof ROLES)[number];
