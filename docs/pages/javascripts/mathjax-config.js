// MathJax 3, served from this site (assets/mathjax/, copied from the django-static-mathjax
// package at build time): never from a CDN. Markdown pages hand their math over as \( \) and \[ \]
// (pymdownx.arithmatex); notebook pages keep the $ $ and $$ $$ of their markdown cells.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "tex2jax_ignore|mathjax_ignore",
    processHtmlClass: "tex2jax_process|mathjax_process|arithmatex",
  },
};
