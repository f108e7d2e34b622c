import type { BerthClient, Service, ServiceImage } from '../../../client/index.ts';
import { formatDateTime, shortDigest } from '../format.ts';
import { errorMessage, usePoll } from '../hooks.ts';
import { Link } from '../router.tsx';
import { useSession } from '../session.ts';

interface ServiceDetails {
  service: Service;
  images: ServiceImage[];
  /** The engine could not be asked (images come from it); the rest still shows. */
  imagesError?: string;
}

interface AccountDetails {
  name: string;
  services: ServiceDetails[];
}

export function AccountsPage() {
  const { client, auth } = useSession();
  const accounts = usePoll(() => Promise.all(auth.accounts.map((name) => loadAccount(client, name))), 0, [client]);

  return (
    <section>
      <div class="page-head">
        <h1>Accounts &amp; services</h1>
        <button type="button" class="quiet" onClick={accounts.reload}>
          Refresh
        </button>
      </div>
      {accounts.error && (
        <p class="error" role="alert">
          {errorMessage(accounts.error)}
        </p>
      )}
      {!accounts.data && !accounts.error && <p class="loading">Loading…</p>}
      {accounts.data?.length === 0 && <p class="empty">No accounts yet. Create one with <code>berth account create &lt;name&gt;</code>.</p>}
      {accounts.data?.map((account) => (
        <article class="account" key={account.name} data-account={account.name}>
          <h2>{account.name}</h2>
          {account.services.length === 0 && <p class="empty">No services.</p>}
          {account.services.map(({ service, images, imagesError }) => (
            <div class="service" key={service.name} data-service={service.name}>
              <h3>{service.name}</h3>
              <dl class="facts">
                <dt>Image repository</dt>
                <dd class="mono">{service.image_name}</dd>
                <dt>Last spawn</dt>
                <dd>{formatDateTime(service.last_spawned_at)}</dd>
              </dl>
              <table>
                <thead>
                  <tr>
                    <th>Environment</th>
                    <th>Image tag</th>
                    <th>Last spawn</th>
                  </tr>
                </thead>
                <tbody>
                  {service.environments.map((environment) => (
                    <tr key={environment.name}>
                      <td>{environment.name}</td>
                      <td class="mono">{environment.image_tag}</td>
                      <td>{formatDateTime(environment.last_spawned_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <table>
                <thead>
                  <tr>
                    <th>Image</th>
                    <th>Digest</th>
                    <th>Created</th>
                  </tr>
                </thead>
                <tbody>
                  {images.map((image) => (
                    <tr key={`${image.digest} ${image.tag}`}>
                      <td class="mono">
                        {image.repository}:{image.tag}
                      </td>
                      <td class="mono" title={image.digest}>
                        {shortDigest(image.digest)}
                      </td>
                      <td>{formatDateTime(image.upload_time)}</td>
                    </tr>
                  ))}
                  {images.length === 0 && (
                    <tr>
                      <td colSpan={3} class="muted">
                        {imagesError ?? 'No image in this repository on the engine yet.'}
                      </td>
                    </tr>
                  )}
                </tbody>
              </table>
            </div>
          ))}
        </article>
      ))}
      <p class="muted">
        Running backends are on the <Link to="/">backends</Link> page.
      </p>
    </section>
  );
}

async function loadAccount(client: BerthClient, name: string): Promise<AccountDetails> {
  const names = await client.services.list(name);
  const services = await Promise.all(
    names.map(async (serviceName): Promise<ServiceDetails> => {
      const [service, images] = await Promise.all([
        client.services.get(name, serviceName),
        client.services.images(name, serviceName).then(
          (list) => ({ list }),
          (error: unknown) => ({ list: [] as ServiceImage[], error: errorMessage(error) }),
        ),
      ]);
      return { service, images: images.list, ...('error' in images ? { imagesError: images.error } : {}) };
    }),
  );
  return { name, services };
}
