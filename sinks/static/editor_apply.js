// The lane editor's "Apply to stream": the server validates the drawn lanes and answers what
// would change (a dry run); the editor lists it and applies only on the operator's
// confirmation. If the stream does not come back with the new lanes, the server restores the
// previous ones and says so (409); the drawing stays in the editor to be fixed.

import { api } from "./api.js";

const $ = (id) => document.getElementById(id);

export class ApplyFlow {
  constructor(editor) {
    this.editor = editor;
    this.pending = null;  // the lanes of a dry run waiting for the confirmation
  }

  url() { return `/api/streams/${encodeURIComponent(this.editor.stream)}/lanes/apply`; }

  /** Validate on the server and show what would change; nothing changes before Apply. */
  async preview() {
    const ed = this.editor;
    if (ed.draft) ed.finish();
    const lanes = ed.payload();
    try {
      const result = await api(this.url(), { method: "POST", body: { lanes, dry_run: true } });
      const diff = result.diff;
      if (!diff.added.length && !diff.removed.length && !diff.changed.length) {
        this.hide();
        ed.say("the stream already runs these lanes: nothing to apply");
        return;
      }
      this.pending = lanes;
      const items = [
        ...diff.added.map((n) => ["added", `+ ${n}: new lane`]),
        ...diff.removed.map((n) => ["removed", `− ${n}: removed (its counts stay in the store)`]),
        ...diff.changed.flatMap((c) => c.fields.map((f) => ["changed",
          `~ ${c.name}: ${f.field} ${show(f.old)} → ${show(f.new)}`])),
      ];
      $("ed-diff").replaceChildren(...items.map(([kind, text]) => {
        const li = document.createElement("li");
        li.className = kind;
        li.textContent = text;
        return li;
      }));
      $("ed-apply-panel").hidden = false;
      ed.say(`apply to ${ed.stream}? ${diff.summary}`);
    } catch (err) {
      this.hide();
      ed.say(err.message, true);
    }
  }

  async confirm() {
    const ed = this.editor;
    if (!this.pending) return;
    const lanes = this.pending;
    this.hide();
    ed.say(`applying to ${ed.stream}: the stream restarts with the new lanes…`);
    $("ed-apply").disabled = true;
    try {
      const result = await api(this.url(), { method: "POST", body: { lanes } });
      await ed.load(ed.stream, `applied to ${ed.stream}: ${result.diff.summary}`);
    } catch (err) {
      // 409: the stream did not come back and the server restored the previous lanes; the
      // drawing stays here so that it can be fixed and applied again.
      ed.say(err.message, true);
    } finally {
      $("ed-apply").disabled = false;
    }
  }

  cancel() {
    this.hide();
    this.editor.say("not applied: the stream is unchanged");
  }

  hide() {
    this.pending = null;
    if ($("ed-apply-panel")) $("ed-apply-panel").hidden = true;
  }
}

function show(value) {
  if (value === null || value === undefined) return "none";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
