use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

pub struct Cache {
    entries: Vec<String>,
}

impl Cache {
    #[resilient(timeout = "1s", fallback = stale)]
    async fn newest(&mut self) -> Result<&str, Error> {
        self.entries.push("fresh".to_owned());
        Ok(self.entries.last().map(String::as_str).unwrap_or_default())
    }

    fn stale(&mut self, error: Error) -> Result<&str, Error> {
        let _ = &mut self.entries;
        Err(error)
    }
}

fn main() {}
