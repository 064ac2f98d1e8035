"""Second factors in the web application: storage, delivery, notifications, administration."""
