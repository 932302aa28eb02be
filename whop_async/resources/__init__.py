"""Resources build requests and structure answers; they never touch HTTP."""
