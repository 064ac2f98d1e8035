"""The demo relying party: a separate small Flask app that signs in through Stepwise."""
