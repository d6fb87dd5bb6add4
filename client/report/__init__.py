"""What stored records become: CSV, Markdown tables and comparisons, and charts declared as data."""
