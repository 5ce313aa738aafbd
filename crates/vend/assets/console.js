// The STS operator console's only script (everything works without it): it shows the
// receipt's Print button and makes it print. Served from /console/static/console.js; the
// Content-Security-Policy allows no inline script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-print]").forEach(function (button) {
        button.hidden = false;
        button.addEventListener("click", function () {
            window.print();
        });
    });
});
