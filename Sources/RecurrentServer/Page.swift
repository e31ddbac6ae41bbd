/// The page at `/`: a prompt, temperature and length, and the text streaming in (no external
/// assets; it reads the server's own `/v1/completions` stream).
func pageHTML(modelName: String) -> String {
  let name = modelName.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
  return """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>Recurrent: \(name)</title>
    <style>
    body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
    textarea { width: 100%; height: 6rem; font: 14px monospace; }
    label { margin-right: 1rem; }
    input[type=number] { width: 5rem; }
    #out { white-space: pre-wrap; font: 14px/1.4 monospace; background: #f6f6f4; border: 1px solid #ddd; padding: 1rem; min-height: 12rem; }
    #status { color: #666; margin: .5rem 0; }
    </style></head>
    <body>
    <h1>Recurrent</h1>
    <p>Model <b id="model">\(name)</b>. Type a prompt and watch the continuation stream in.</p>
    <textarea id="prompt">ROMEO:</textarea>
    <p><label>Temperature <input id="temperature" type="number" value="0.8" min="0" max="5" step="0.1"></label>
    <label>Length <input id="length" type="number" value="300" min="1" max="4096"></label>
    <label>API key <input id="key" type="password" size="12"></label>
    <button id="go">Generate</button> <button id="stop" disabled>Stop</button></p>
    <div id="status"></div>
    <div id="out"></div>
    <script>
    const out = document.getElementById('out'), status = document.getElementById('status');
    const go = document.getElementById('go'), stop = document.getElementById('stop');
    let controller = null;
    go.onclick = async () => {
      out.textContent = document.getElementById('prompt').value;
      status.textContent = 'streaming...';
      go.disabled = true; stop.disabled = false;
      controller = new AbortController();
      const headers = {'Content-Type': 'application/json'};
      const key = document.getElementById('key').value;
      if (key) headers['Authorization'] = 'Bearer ' + key;
      let tokens = 0;
      try {
        const response = await fetch('/v1/completions', {method: 'POST', headers, signal: controller.signal,
          body: JSON.stringify({prompt: document.getElementById('prompt').value, stream: true,
            temperature: Number(document.getElementById('temperature').value),
            max_tokens: Number(document.getElementById('length').value)})});
        if (!response.ok) { status.textContent = 'error: ' + (await response.json()).error.message; return; }
        const reader = response.body.getReader(), decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, {stream: true});
          let end;
          while ((end = buffer.indexOf('\\n\\n')) >= 0) {
            const line = buffer.slice(0, end); buffer = buffer.slice(end + 2);
            if (!line.startsWith('data: ')) continue;
            const data = line.slice(6);
            if (data === '[DONE]') { status.textContent = 'done: ' + tokens + ' pieces'; document.title = 'done'; continue; }
            const chunk = JSON.parse(data);
            out.textContent += chunk.choices[0].text; tokens += 1;
          }
        }
      } catch (e) {
        status.textContent = e.name === 'AbortError' ? 'stopped' : 'error: ' + e;
      } finally {
        go.disabled = false; stop.disabled = true;
      }
    };
    stop.onclick = () => controller && controller.abort();
    // /?prompt=...&temperature=...&length=...&autostart=1 fills the form (and starts): a link
    // can share a prompt, and a headless browser can check the page.
    const query = new URLSearchParams(location.search);
    for (const field of ['prompt', 'temperature', 'length']) {
      if (query.has(field)) document.getElementById(field).value = query.get(field);
    }
    if (query.get('autostart') === '1') go.click();
    </script>
    </body></html>
    """
}
