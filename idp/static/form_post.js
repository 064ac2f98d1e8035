// OAuth 2.0 Form Post Response Mode: submit the response to the application at once.
// A static file, because the Content-Security-Policy allows no inline script.
document.getElementById("form-post").submit();
