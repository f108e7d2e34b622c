import { useEffect, useRef } from 'preact/hooks';
import type { LogLine } from '../../../client/index.ts';
import { formatTime } from '../format.ts';

/**
 * The lines so far, newest at the bottom. It keeps to the bottom while the
 * reader is there, and stays put once they scroll up to read.
 */
export function LogView({ lines }: { lines: LogLine[] }) {
  const box = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);

  useEffect(() => {
    const element = box.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  }, [lines]);

  return (
    <div
      class="logs"
      ref={box}
      onScroll={(event) => {
        const element = event.currentTarget;
        pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
      }}
    >
      {lines.length === 0 && <p class="muted">No output yet.</p>}
      <table>
        <tbody>
          {lines.map((line, index) => (
            <tr key={line.id ?? index} class={`log ${line.stream ?? 'stdout'}`}>
              <td class="time">{line.time ? formatTime(line.time) : ''}</td>
              <td class="stream">{line.stream ?? ''}</td>
              <td class="line">{line.line}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
