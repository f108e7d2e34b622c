/**
 * Headers of the dashboard's HTML. The built app is a script and a stylesheet
 * of our own origin, talking to the API on that origin: nothing else may load,
 * no inline script or style runs, and no other site may frame the page.
 */
export function dashboardHeaders(): Record<string, string> {
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  };
}

/** What /dashboard says when berth runs from a checkout whose dashboard was never built. */
export function renderDashboardNotBuilt(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>berth dashboard: not built</title>
</head>
<body>
<h1>The dashboard is not built</h1>
<p>berth serves the dashboard from the files <code>npm run build</code> makes
(<code>npm run build:dashboard</code> builds only the dashboard). Run it in
berth's directory, then reload this page; berth need not restart.</p>
</body>
</html>
`;
}
