from streamlake.cli import app

app(prog_name="streamlake")
