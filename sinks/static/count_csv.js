// The manual-count CSV of the counting page: the text (as sinks/manual_count_csv.py writes
// it, so the download and the server's --output copy are the same file), the download (a
// Blob: no server needed) and the POST to --output.

function cell(text) {
  return /[,"\r\n]/.test(text) || text !== text.trim() ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The CSV text: `#` comments, the header, the entries in frame order (then counting order);
 *  times as the server formatted them (meta.times). */
export function csvText(meta, entries) {
  const lines = meta.comments.map((c) => `# ${c.split(/\r?\n|\r/).join(" ")}`);
  lines.push("time_s,frame,lane,direction,class");
  const rows = entries.map((e, i) => [e, i]).sort((a, b) => a[0].frame - b[0].frame || a[1] - b[1]);
  for (const [e] of rows) {
    lines.push([meta.times[e.frame], String(e.frame), cell(e.lane), cell(e.direction),
                cell(e.class)].join(","));
  }
  return lines.join("\n") + "\n";
}

/** Make the browser download the CSV; returns the file name. */
export function download(meta, entries) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csvText(meta, entries)], { type: "text/csv" }));
  link.download = `${meta.video.replace(/\.[^.]*$/, "")}_manual.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return link.download;
}

/** Send the entries to the server, which checks them and writes --output; returns the path
 *  written, or null when the server was started without --output. Throws with the server's
 *  message when it refuses them. */
export async function postCounts(meta, entries) {
  if (!meta.save_to) return null;
  const r = await fetch("/api/manual-count", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ entries }),
  });
  const answer = await r.json();
  if (!r.ok) throw new Error(answer.message);
  return answer.saved;
}
